# -*- test-case-name: tests.remote.test_mtastssettings -*-
"""
C{control/mtasts} (a pymta addition): MTA-STS (RFC 8461) in remote delivery.

Absent: on, with the system's trusted CAs.  Otherwise one keyword a line:

- C{off}: no MTA-STS lookups, TLS as before (opportunistic unless
  C{control/tlsdestinations} says otherwise);
- C{ca /path/ca.pem}: verify the policy web servers (C{mta-sts.DOMAIN})
  and the MX hosts of a policy in enforce mode against the CA
  certificates in this file instead of the system's.  For test set-ups and
  private networks; the Internet's MTA-STS domains need the system's CAs.

A file with comment lines only changes nothing.  An unknown or repeated
keyword, C{ca} without a usable file (an absolute path to PEM
certificates), or C{ca} together with C{off} is a
L{pymta.control.ControlError} naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.control import Controls, entry_error
from pymta.remote.trustanchors import check_ca_file

__all__ = ["MTASTSSettings", "mtasts_settings"]


@dataclass(frozen=True)
class MTASTSSettings:
    """What control/mtasts asks for: C{enabled}, and C{ca_file} (None: the system's CAs)."""

    enabled: bool = True
    ca_file: str | None = None


def mtasts_settings(controls: Controls) -> MTASTSSettings:
    """The settings of control/mtasts (on, system CAs when absent); L{ControlError} on a bad line."""
    lines = controls.extra_lines("mtasts")
    if not lines:
        return MTASTSSettings()
    seen: dict[str, int] = {}
    ca_file: str | None = None
    for index, line in enumerate(lines):
        words = line.split()
        keyword = words[0].lower()
        if keyword in seen:
            raise entry_error(lines, index, f"{keyword!r} is given twice", "mtasts")
        seen[keyword] = index
        if keyword == "off" and len(words) == 1:
            continue
        if keyword == "ca" and len(words) == 2:
            try:
                check_ca_file(words[1])
            except ValueError as e:
                raise entry_error(lines, index, str(e), "mtasts") from None
            ca_file = words[1]
            continue
        raise entry_error(lines, index, f"expected 'off' or 'ca /path/ca.pem', found {line!r}", "mtasts")
    if "off" in seen and ca_file is not None:
        raise entry_error(lines, seen["ca"], "'ca' has no use when MTA-STS is 'off'", "mtasts")
    return MTASTSSettings(enabled="off" not in seen, ca_file=ca_file)
