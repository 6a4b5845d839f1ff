# -*- test-case-name: tests.remote.test_mtastspolicy -*-
"""
MTA-STS (RFC 8461) texts, pure: the C{_mta-sts} TXT record, the policy
file, and which MX host names a policy allows.

TXT record (L{record_id}): C{v=STSv1; id=20240101T000000;} - fields
separated by C{;}, blanks around them allowed, C{v=STSv1} first, C{id}
1 to 32 letters and digits, other fields ignored.  Of the TXT records of
C{_mta-sts.DOMAIN}, only those starting with C{v=STSv1} count; unless
exactly one is left and it parses, the domain has no policy.

Policy file (L{parse_policy}): one C{key: value} a line (lines end at LF,
a CR before it is dropped); C{version: STSv1}, C{mode: enforce|testing|none},
C{max_age: SECONDS} (at most a year, L{MAX_AGE}), and C{mx: PATTERN} once
or more (at least once unless the mode is C{none}).  A pattern is a host
name or C{*.} followed by one (L{mx_matches}: the star stands for exactly
one label).  Unknown keys are ignored; for a repeated key other than
C{mx} the first one counts.  Anything else wrong is a L{PolicyError}
saying what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ENFORCE",
    "TESTING",
    "NONE",
    "MAX_AGE",
    "PolicyError",
    "Policy",
    "record_id",
    "parse_policy",
    "mx_matches",
]

ENFORCE = "enforce"
TESTING = "testing"
NONE = "none"
MODES = (ENFORCE, TESTING, NONE)

#: the largest max_age RFC 8461 allows (about a year), in seconds
MAX_AGE = 31557600

_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.-]+=[\x21-\x3a\x3c\x3e-\x7e]+$")  # printable ASCII except ; and =
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Policy:
    """A parsed policy: C{mode}, C{max_age} in seconds and the C{mx} patterns (lowercase)."""

    mode: str
    max_age: int
    mx: tuple[str, ...]

    def allows(self, host: str) -> bool:
        """True when one of the policy's C{mx} patterns matches the MX host name C{host}."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def record_id(records: list[str]) -> str | None:
    """The C{id} of the one valid C{v=STSv1} record among a name's TXT C{records}, else None."""
    candidates = [r for r in records if r.startswith("v=STSv1")]
    if len(candidates) != 1:
        return None
    fields = [f.strip() for f in candidates[0].split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # a final ";" is allowed
    if not fields or fields[0] != "v=STSv1":
        return None
    found: str | None = None
    for field in fields[1:]:
        if not _FIELD.match(field):
            return None
        key, _, value = field.partition("=")
        if key == "id" and found is None:
            if not _ID.match(value):
                return None
            found = value
    return found


def _host(text: str) -> str:
    return text.strip().rstrip(".").lower()


def mx_matches(pattern: str, host: str) -> bool:
    """
    True when the MX host name C{host} matches C{pattern}: equal (case and
    a final dot ignored), or C{*.rest} with C{host} one label in front of C{rest}.
    """
    pattern, host = _host(pattern), _host(host)
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(dot) and bool(label) and rest == pattern[2:]
    return pattern == host


def _pattern_problem(pattern: str) -> str | None:
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"mx {pattern!r} is not a host name or *.host.name"
    return None


def parse_policy(body: bytes) -> Policy:
    """The policy in the text C{body} of a C{.well-known/mta-sts.txt}; L{PolicyError} when unusable."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("the policy is not UTF-8 text") from None
    fields: dict[str, str] = {}
    patterns: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise PolicyError(f"line {number} is not 'key: value': {line[:80]!r}")
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            problem = _pattern_problem(value.lower())
            if problem is not None:
                raise PolicyError(problem)
            patterns.append(_host(value))
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError(f"version is {fields.get('version')!r}, not 'STSv1'")
    mode = fields.get("mode", "")
    if mode not in MODES:
        raise PolicyError(f"mode is {mode!r}, not enforce, testing or none")
    age = fields.get("max_age", "")
    if not age.isascii() or not age.isdigit() or len(age) > 10:
        raise PolicyError(f"max_age is {age!r}, not a number of seconds")
    if not patterns and mode != NONE:
        raise PolicyError(f"a policy in {mode} mode names no mx")
    return Policy(mode, min(int(age), MAX_AGE), tuple(patterns))
