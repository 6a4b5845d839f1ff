# -*- test-case-name: tests.metrics.test_sessions -*-
"""Counters of SMTP and POP3 sessions: the L{SessionEvents} of a daemon started with C{--metrics}."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from pymta.sessionevents import SessionEvents

__all__ = ["SessionFamilies", "SessionCounters"]


class SessionFamilies:
    """The session counters of one registry, labelled by service (C{smtpd}, C{pop3d})."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions = Counter("pymta_sessions", "Client connections accepted by a listener.",
                                ["service"], registry=registry)
        self.tls_sessions = Counter("pymta_tls_sessions", "Sessions that used TLS (implicit, STARTTLS or STLS).",
                                    ["service"], registry=registry)
        self.login_failures = Counter("pymta_login_failures", "Logins refused for wrong credentials (SMTP AUTH, POP3).",
                                      ["service"], registry=registry)
        self.accepted = Counter("pymta_smtpd_messages_accepted", "Messages accepted by smtpd (250 after DATA).",
                                registry=registry)
        self.refused = Counter("pymta_smtpd_refusals",
                               "Senders, recipients and messages smtpd refused, by reason.",
                               ["reason"], registry=registry)


class SessionCounters(SessionEvents):
    """Counts one service's session events into L{SessionFamilies}."""

    def __init__(self, families: SessionFamilies, service: str) -> None:
        self.families = families
        self._sessions = families.sessions.labels(service)
        self._tls = families.tls_sessions.labels(service)
        self._logins = families.login_failures.labels(service)

    def session(self, tls: bool) -> None:
        self._sessions.inc()
        if tls:
            self._tls.inc()

    def tls_started(self) -> None:
        self._tls.inc()

    def login_failed(self) -> None:
        self._logins.inc()

    def accepted(self) -> None:
        self.families.accepted.inc()

    def refused(self, reason: str) -> None:
        self.families.refused.labels(reason).inc()
