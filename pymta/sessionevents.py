# -*- test-case-name: tests.test_sessionevents -*-
"""
What an SMTP or POP3 session tells the daemon's metrics: the seam between
the protocols (L{pymta.smtpd}, L{pymta.pop3d}) and whatever counts
(L{pymta.metrics.sessions}).  The protocols import only this module, so
they never depend on prometheus-client; a daemon started without
C{--metrics} keeps the no-op L{SessionEvents}.

Nothing here is durable: the events are counted in memory, and a restart
starts every counter at zero (as Prometheus expects of a counter).
"""

from __future__ import annotations

__all__ = ["SessionEvents", "NO_EVENTS"]


class SessionEvents:
    """The events of one daemon's sessions; this base class ignores them all."""

    def session(self, tls: bool) -> None:
        """A client connected (C{tls}: on an implicit-TLS listener)."""

    def tls_started(self) -> None:
        """A session in clear text started TLS (STARTTLS, STLS)."""

    def login_failed(self) -> None:
        """A login (SMTP AUTH, POP3 USER/PASS, APOP, AUTH) was refused for wrong credentials."""

    def accepted(self) -> None:
        """A message was accepted (its 250 after DATA was sent)."""

    def refused(self, reason: str) -> None:
        """A sender, recipient or message was refused for C{reason} (a short label)."""


#: the shared do-nothing instance
NO_EVENTS = SessionEvents()
