# -*- test-case-name: tests.smtpd.test_protocol -*-
"""The protocol factory of one SMTP listener (port 25 or submission)."""

from __future__ import annotations

from twisted.internet.protocol import ServerFactory

from pymta.smtpd.context import ListenerSettings, SMTPDContext
from pymta.smtpd.protocol import SMTPServerProtocol

__all__ = ["SMTPFactory"]


class SMTPFactory(ServerFactory):
    """Builds an L{SMTPServerProtocol} per connection, all sharing one L{SMTPDContext}."""

    noisy = False

    def __init__(self, context: SMTPDContext, settings: ListenerSettings | None = None) -> None:
        self.context = context
        self.settings = settings or ListenerSettings()

    def buildProtocol(self, addr: object) -> SMTPServerProtocol:
        self.context.events.session(self.settings.implicit_tls)
        protocol = SMTPServerProtocol(self.context, self.settings)
        protocol.factory = self
        return protocol
