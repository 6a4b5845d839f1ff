# -*- test-case-name: tests.smtpd.test_admission -*-
"""
What a client admitted by its tcp.smtp rule gets, pure and shared by the
SMTP and QMTP listeners (L{pymta.smtpd.protocol}, L{pymta.qmtpd.protocol}):
the environment tcpserver would set (C{TCPREMOTEIP}, C{TCPLOCALIP},
C{TCPREMOTEHOST} when the name is known, then the rule's variables), and
what smtpd reads from it: C{RELAYCLIENT} and C{DATABYTES}, which overrides
control/databytes when it is a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pymta.control import Controls
from pymta.smtpd.access import AccessRule

__all__ = ["Admission", "admission"]


@dataclass(frozen=True)
class Admission:
    """The session's environment, its C{RELAYCLIENT} (None: unset) and its databytes (0: no limit)."""

    env: Mapping[str, str]
    relayclient: str | None
    databytes: int


def admission(controls: Controls, rule: AccessRule, remote_ip: str, local_ip: str,
              remote_host: str | None) -> Admission:
    """The L{Admission} of a client the rule C{rule} lets in."""
    env = {"TCPREMOTEIP": remote_ip, "TCPLOCALIP": local_ip}
    if remote_host is not None:
        env["TCPREMOTEHOST"] = remote_host
    env.update(rule.environment)
    value = env.get("DATABYTES", "").strip()
    databytes = int(value) if value.isdigit() else controls.databytes
    return Admission(env, env.get("RELAYCLIENT"), databytes)
