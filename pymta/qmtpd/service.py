# -*- test-case-name: tests.qmtpd.test_service -*-
"""
The QMTP listeners (C{--qmtp ENDPOINT}): children of the SMTP service, so
they share its L{SMTPDContext} (access rules and certificate as reloaded,
connection limits, queue sink) and start and stop with it.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet.protocol import ServerFactory

from pymta.listenbacklog import listen_backlog
from pymta.qmtpd.protocol import QMTPServerProtocol
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.service import SMTPDService
from pymta.tls import server_listener

__all__ = ["QMTPFactory", "add_qmtp_listeners", "QMTP_PORT"]

#: QMTP's port
QMTP_PORT = 209


class QMTPFactory(ServerFactory):
    """Builds a L{QMTPServerProtocol} per connection, all sharing one L{SMTPDContext}."""

    noisy = False

    def __init__(self, context: SMTPDContext) -> None:
        self.context = context

    def buildProtocol(self, addr: object) -> QMTPServerProtocol:
        protocol = QMTPServerProtocol(self.context)
        protocol.factory = self
        return protocol


def add_qmtp_listeners(smtpd: SMTPDService, endpoints: Sequence[str], reactor: Any) -> None:
    """Listen for QMTP on each endpoint string (Twisted's syntax), as children of C{smtpd}."""
    factory = QMTPFactory(smtpd.context)
    for description in endpoints:
        tls = smtpd.context.tls
        assert tls is not None  # build_smtpd_service always makes one
        backlog = listen_backlog(smtpd.context.reader.current.concurrencyincoming)  # the sessions QMTP accepts
        listener = server_listener(reactor, description, factory, tls, smtpd.trusted_proxies, backlog=backlog)
        listener.setServiceParent(smtpd)
