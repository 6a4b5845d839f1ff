# -*- test-case-name: tests.smtpd.test_tls -*-
"""
STARTTLS (RFC 3207) for qmail-smtpd's dialogue.  Mixed into
L{pymta.smtpd.protocol.SMTPServerProtocol}, which provides the attributes
declared below.

After C{220 ready to start TLS} everything the client sent before the
handshake is thrown away, and HELO, the sender, the recipients and AUTH are
forgotten: the EHLO that must follow is the session's first again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

from twisted.internet.interfaces import ITLSTransport
from twisted.logger import Logger

from pymta.connectionclose import ConnectionCloser
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.junk import JunkCounter
from pymta.smtpd.modes import CLOSED, REPLY_UNIMPLEMENTED
from pymta.smtpd.replywriter import ReplyWriter, TransportReplies

__all__ = ["TLSCommands"]

log = Logger()


class TLSCommands:
    """C{smtp_starttls}, and the end of a TLS handshake (C{IHandshakeListener})."""

    # provided by SMTPServerProtocol
    ctx: SMTPDContext
    transport: Any
    tls: bool
    helo: str | None
    esmtp: bool
    auth_user: str | None
    _buf: bytes
    _mode: Any
    _junk: JunkCounter
    _closer: ConnectionCloser
    _replies: ReplyWriter
    reply: Callable[[str], None]
    _reset_transaction: Callable[[], None]
    if TYPE_CHECKING:  # GreetCommands' property, declared read-only as it is there

        @property
        def starttls_offered(self) -> bool: ...

    def handshakeCompleted(self) -> None:
        self._closer.handshake_completed()

    def smtp_starttls(self, arg: str) -> None:
        if not self.starttls_offered:
            self.reply(REPLY_UNIMPLEMENTED if not self.tls else "503 TLS already active (#5.5.1)")
            return
        if arg:
            self.reply("501 STARTTLS takes no argument (#5.5.4)")
            return
        assert self.ctx.tls is not None
        self.reply("220 ready to start TLS")
        # RFC 3207: nothing the client sent before the handshake counts.
        self._buf = b""
        self.helo = None
        self.esmtp = False
        self.auth_user = None
        self._reset_transaction()
        self._junk.tls_started()  # the EHLO that must follow is the session's first again
        self._closer.tls_started()
        self._replies = TransportReplies(self.transport)  # TLS writes through the transport only
        try:
            cast(ITLSTransport, self.transport).startTLS(self.ctx.tls)  # type: ignore[arg-type]  # takes a context factory too
        except Exception:
            log.failure("smtpd: STARTTLS failed to start")
            self._mode = CLOSED
            self._closer.close(self.transport)
            return
        self.tls = True
