"""One method's result for one message, as RFC 8601 reports it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Verdict", "PASS", "FAIL", "SOFTFAIL", "NEUTRAL", "NONE", "TEMPERROR", "PERMERROR", "POLICY"]

PASS = "pass"
FAIL = "fail"
SOFTFAIL = "softfail"
NEUTRAL = "neutral"
NONE = "none"
TEMPERROR = "temperror"
PERMERROR = "permerror"
POLICY = "policy"


@dataclass(frozen=True)
class Verdict:
    """
    C{method} (C{spf}, C{dkim}, C{dmarc}) and its C{result}; C{reason}
    says why in words; C{properties} are (ptype.property, value) pairs
    such as C{("smtp.mailfrom", "example.com")}; C{comment} is a short
    note shown in parentheses after the result.
    """

    method: str
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()
    comment: str = ""

    def value(self, prop: str) -> str | None:
        """The value of property C{prop} (e.g. C{header.d}), or None."""
        return next((value for name, value in self.properties if name == prop), None)
