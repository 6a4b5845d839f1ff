# -*- test-case-name: tests.smtpd.test_protocol -*-
"""
What every SMTP session of one daemon shares: controls, the queue sink,
access rules, connection limits, TLS, AUTH, DNSBL - and the per-listener
settings (port 25 or submission, implicit TLS).

Holding these in one object keeps the protocol free of globals and lets
L{SMTPDService.reload} swap rules, certificate and zones in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.cred.portal import Portal

from pymta.authlimit import LoginLimiter, limiter_for
from pymta.connectionlimit import PER_ADDRESS, TOTAL, ConnectionLimiter
from pymta.control import ControlReader, Controls, entry_error
from pymta.interfaces import MessageSink
from pymta.milter.api import MilterSession
from pymta.sessionevents import NO_EVENTS, SessionEvents
from pymta.smtpd.access import AccessRules
from pymta.smtpd.auth import offered_mechanisms
from pymta.smtpd.dnsbl import DNSBL
from pymta.smtpd.endofdata import EndOfDataStage
from pymta.smtpd.junk import JUNK_COMMAND_LIMIT
from pymta.smtpd.replyreasons import tell
from pymta.tls import ServerTLS
from pymta.snapshotcache import PerSnapshot

__all__ = ["SMTPDContext", "ListenerSettings", "per_ip_limit", "LIMIT_REPLIES"]

#: the answer to a client over a connection limit (L{ConnectionLimiter.acquire}'s reason)
LIMIT_REPLIES = {
    TOTAL: "421 too many connections, try again later (#4.3.2)",
    PER_ADDRESS: "421 too many connections from your address, try again later (#4.3.2)",
}


def per_ip_limit(controls: Controls) -> int:
    """
    Sessions one client address may hold: C{control/concurrencyperip}
    (a pymta addition: one number, at least 1), else half of
    concurrencyincoming (at least 1).  Anything else in the file is a
    L{ControlError} naming its line.
    """
    lines = controls.extra_lines("concurrencyperip")
    if lines:
        value = lines[0].strip()
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise entry_error(lines, 0, f"expected a number of sessions, at least 1, found {value!r}", "concurrencyperip")
        if len(lines) > 1:
            raise entry_error(lines, 1, f"only one number is read: this line would be ignored: {lines[1]!r}",
                              "concurrencyperip")
        return int(value)
    return max(1, controls.concurrencyincoming // 2)


@dataclass
class SMTPDContext:
    """
    Shared state of an SMTP daemon.  C{rules}, C{tls}, C{dnsbl} may be
    replaced at reload; sessions take them once at connection time.

    C{cram_md5}: None offers CRAM-MD5 whenever the portal's checkers can
    check it; False never offers it (a store of one-way hashes would fail
    every CRAM-MD5 attempt, and clients try it first).

    C{recipient_check}, when set, is called as C{(controls, address)} for
    each recipient that passed relay policy and returns (a Deferred of)
    True to accept, False to refuse with 550.

    C{auth_limiter} budgets AUTH attempts and bounds the password checks
    running at once (L{pymta.authlimit}); when not given, one is made with
    the budgets of the control files.

    C{end_of_data} holds the steps that see each whole message before it
    is queued (L{pymta.smtpd.endofdata}); none by default.
    C{events} hears what the sessions do, for the daemon's metrics.
    """

    reader: ControlReader
    sink: MessageSink
    clock: Any
    rules: AccessRules = field(default_factory=AccessRules)
    limiter: ConnectionLimiter = field(default_factory=ConnectionLimiter)
    tls: ServerTLS | None = None
    portal: Portal | None = None
    dnsbl: DNSBL | None = None
    auth_without_tls: bool = False
    auth_failure_delay: float = 1.0
    max_auth_failures: int = 3
    max_recipients: int = 1000
    junk_command_limit: int = JUNK_COMMAND_LIMIT  # commands without progress (pymta.smtpd.junk)
    max_command_line: int = 4096
    max_data_line: int = 128 * 1024
    pipeline_buffer: int = 64 * 1024
    rbl_session_seconds: float = 60.0
    recipient_check: Callable[[Controls, str], Any] | None = None
    local_ips: frozenset[str] = frozenset({"127.0.0.1"})
    max_auth_delay: float = 30.0
    cram_md5: bool | None = None
    resolver: Any = None
    reverse_lookup_seconds: float = 5.0
    auth_limiter: LoginLimiter | None = None
    end_of_data: EndOfDataStage = field(default_factory=EndOfDataStage)  # checks of whole messages (senderauth)
    #: what the sessions tell the daemon's metrics (L{pymta.sessionevents})
    events: SessionEvents = NO_EVENTS
    #: the content filters of a new session (L{pymta.smtpd.miltercommands}); None: no filters at all
    milters: Callable[[], MilterSession | None] | None = None
    _per_ip: PerSnapshot[int] = field(default_factory=lambda: PerSnapshot(per_ip_limit), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.auth_limiter is None:
            self.auth_limiter = limiter_for(self.reader, self.clock)

    def auth_mechanisms(self) -> list[str]:
        if self.portal is None:
            return []
        mechs = offered_mechanisms(self.portal)
        if self.cram_md5 is False and "CRAM-MD5" in mechs:
            mechs.remove("CRAM-MD5")
        return mechs

    def replied(self, line: str) -> None:
        """A session sent C{line}: tell the metrics what it means (L{pymta.smtpd.replyreasons})."""
        if self.events is not NO_EVENTS:
            tell(self.events, line)

    def per_ip_limit(self, controls: Controls) -> int:
        """L{per_ip_limit} of C{controls}, read once per controls snapshot."""
        return self._per_ip(controls)


@dataclass(frozen=True)
class ListenerSettings:
    """How one listening endpoint behaves."""

    submission: bool = False
    implicit_tls: bool = False
