# -*- test-case-name: tests.senderauth.test_settings -*-
"""
C{control/senderauth} (a pymta addition): whether smtpd checks SPF, DKIM
and DMARC of the mail it receives, and what it refuses.

Absent: no checks (qmail's behaviour; nothing is copied or looked up).
Otherwise one keyword a line:

- C{check}: check every message from a client that is neither a relay
  client (C{RELAYCLIENT}) nor logged in (AUTH), and add an
  C{Authentication-Results:} header field;
- C{reject-spf-fail}: answer C{550} at MAIL FROM when the sender's
  domain's SPF record says C{fail} (C{-all}) for the client's address;
- C{reject-dmarc}: answer C{550} at the end of DATA when DMARC fails and
  the From domain's policy is C{p=reject};
- C{timeout SECONDS}: how long the DNS questions of one check may take
  in all (default 20, RFC 7208 section 4.6.4); then the answer is
  C{temperror}.

An unknown keyword, a repeated one, a refusal without C{check} or an
empty file is a L{pymta.control.ControlError} naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.control import Controls, entry_error

__all__ = ["SenderAuthSettings", "sender_auth_settings", "DEFAULT_TIMEOUT", "MAX_TIMEOUT"]

DEFAULT_TIMEOUT = 20.0
MAX_TIMEOUT = 120.0
_FLAGS = ("check", "reject-spf-fail", "reject-dmarc")


@dataclass(frozen=True)
class SenderAuthSettings:
    """What control/senderauth asks for."""

    check: bool = False
    reject_spf_fail: bool = False
    reject_dmarc: bool = False
    timeout: float = DEFAULT_TIMEOUT


def sender_auth_settings(controls: Controls) -> SenderAuthSettings:
    """The settings of control/senderauth (all off when it is absent); L{ControlError} on a bad line."""
    lines = controls.extra_lines("senderauth")
    if lines is None:
        return SenderAuthSettings()
    if not lines:
        raise entry_error([""], 0, "no keyword: write 'check', or remove the file to turn the checks off", "senderauth")
    seen: dict[str, int] = {}
    timeout = DEFAULT_TIMEOUT
    for index, line in enumerate(lines):
        words = line.split()
        keyword = words[0].lower()
        if keyword in seen:
            raise entry_error(lines, index, f"{keyword!r} is given twice", "senderauth")
        seen[keyword] = index
        if keyword == "timeout":
            timeout = _seconds(lines, index, words)
        elif keyword not in _FLAGS or len(words) > 1:
            raise entry_error(lines, index, f"expected one of check, reject-spf-fail, reject-dmarc, timeout SECONDS; "
                              f"found {line!r}", "senderauth")
    if "check" not in seen:
        index = min(seen.values())
        raise entry_error(lines, index, f"{lines[index]!r} without a 'check' line would do nothing", "senderauth")
    return SenderAuthSettings(
        check=True, reject_spf_fail="reject-spf-fail" in seen, reject_dmarc="reject-dmarc" in seen, timeout=timeout
    )


def _seconds(lines: list[str], index: int, words: list[str]) -> float:
    value = words[1] if len(words) == 2 else ""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:
        raise entry_error(lines, index, f"timeout takes seconds, more than 0 and at most {MAX_TIMEOUT:g}: "
                          f"found {lines[index]!r}", "senderauth")
    return seconds
