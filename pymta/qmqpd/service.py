# -*- test-case-name: tests.qmqpd.test_service -*-
"""
The QMQP listeners (C{--qmqp ENDPOINT}): children of the SMTP service, so
they share its L{SMTPDContext} (connection limits, queue sink, end-of-data
steps) and start and stop with it.  Their access rules are their own:
ROOT/etc/tcp.qmqp (L{pymta.qmqpd.access}).
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet.protocol import ServerFactory

from pymta.listenbacklog import listen_backlog
from pymta.qmqpd.access import QMQPRules, qmqp_rules_path
from pymta.qmqpd.protocol import QMQPServerProtocol
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.service import SMTPDService
from pymta.tls import server_listener

__all__ = ["QMQPFactory", "add_qmqp_listeners", "QMQP_PORT"]

#: QMQP's port
QMQP_PORT = 628


class QMQPFactory(ServerFactory):
    """Builds a L{QMQPServerProtocol} per connection, all sharing one context and one L{QMQPRules}."""

    noisy = False

    def __init__(self, context: SMTPDContext, rules: QMQPRules) -> None:
        self.context = context
        self.rules = rules

    def buildProtocol(self, addr: object) -> QMQPServerProtocol:
        protocol = QMQPServerProtocol(self.context, self.rules)
        protocol.factory = self
        return protocol


def add_qmqp_listeners(smtpd: SMTPDService, endpoints: Sequence[str], reactor: Any) -> None:
    """Listen for QMQP on each endpoint string (Twisted's syntax), as children of C{smtpd}."""
    factory = QMQPFactory(smtpd.context, QMQPRules(qmqp_rules_path(smtpd.root)))
    for description in endpoints:
        tls = smtpd.context.tls
        assert tls is not None  # build_smtpd_service always makes one
        backlog = listen_backlog(smtpd.context.reader.current.concurrencyincoming)  # QMTP's limit, which QMQP shares
        listener = server_listener(reactor, description, factory, tls, smtpd.trusted_proxies, backlog=backlog)
        listener.setServiceParent(smtpd)
