# -*- test-case-name: tests.remote.test_client -*-
"""
pymta's SMTP client: one connection, one transaction, qmail-remote's rules.

L{SMTPClientProtocol} talks to one server address and reports a
L{SessionOutcome}: one report per recipient (C{r} accepted, C{h} refused
for good, C{s} refused for now, with text) and a message report (C{K}, C{Z}
or C{D} with text), in qmail-remote's wording (docs/internals.md, 'Remote delivery's reports'), plus
hints for the caller: C{next_host} (nothing was sent yet, another address
may be tried), C{tls_failed} (an optional TLS handshake failed: retry on a
new plain connection) and C{retry} (recipients a server refused with 452
"too many recipients" after others were accepted: send them in a further
transaction).

Dialogue: with C{implicit_tls}, the TLS handshake first; greeting;
C{EHLO helohost} (C{HELO} when EHLO is refused with 5xx); STARTTLS when
offered and TLS is not off, then EHLO again; with C{credentials}, AUTH
(L{pymta.remote.smtpauth}) only inside TLS: without TLS, without a
mechanism pymta knows, or refused, it is a deferral; C{MAIL},
the C{RCPT}s and C{DATA} (one write when the server offers PIPELINING;
the message goes only when MAIL and a recipient were accepted); MAIL
carries C{SIZE=} (the stored size), C{BODY=8BITMIME} and, when an address
is not ASCII, C{SMTPUTF8}, each when the server offers the extension; the message streamed from its file through
L{pymta.remote.bodysender.BodySender}, then C{QUIT} without waiting.

Replies: lines end at LF (a CR before it is dropped); C{xyz-} continues a
reply; a line that is not C{ddd} followed by space, C{-} or its end counts
as code 0, i.e. a temporary failure wherever it comes.  A reply line over
L{MAX_LINE} bytes, or a reply of more than L{MAX_REPLY_LINES} lines or
L{MAX_REPLY_BYTES} bytes, drops the connection ("connection died").  The
text kept is at most 5000 bytes, CRs dropped, NUL as C{?}.

C{timeout} (control/timeoutremote) bounds every wait for the server, also
while the message is written to a server that stopped reading.

Connection reuse: with C{keep_open}, a connection whose transaction ended
with a reply to the final dot is reported at once and stays open (C{idle});
L{SMTPClientProtocol.start_transaction} sends the next message from MAIL
on.  When such a kept connection turns out to be gone (lost before the
final dot, or C{421} to MAIL), the outcome says C{stale}: nothing was
delivered and the caller retries on a new connection.

Here: the connection, reply parsing, the greeting, EHLO/HELO, STARTTLS,
AUTH and connection reuse; the transaction (MAIL to the final dot) and
L{SessionOutcome} are in L{pymta.remote.transaction}.
"""

from __future__ import annotations

import re
from typing import IO, Any, Callable, Sequence, cast

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.interfaces import DEFERRAL
from pymta.remote.bodysender import BodySender
from pymta.remote.dsnout import DsnFile
from pymta.remote.reply import Reply, said, tls_failure_reason
from pymta.remote.smarthostauth import Credentials
from pymta.remote.smtpauth import AuthExchange
from pymta.remote.transaction import ACCEPTED, DEFERRED, REFUSED, SessionOutcome, TransactionSteps

__all__ = [
    "MAX_LINE",
    "MAX_REPLY_LINES",
    "MAX_REPLY_BYTES",
    "Reply",
    "SessionOutcome",
    "SMTPClientProtocol",
    "ACCEPTED",
    "REFUSED",
    "DEFERRED",
]

MAX_LINE = 4096
MAX_REPLY_LINES = 200
MAX_REPLY_BYTES = 64 * 1024

_CODE = re.compile(rb"^([0-9]{3})(?:[ -]|$)")


@implementer(interfaces.IHandshakeListener)
class SMTPClientProtocol(TransactionSteps, LineReceiver, TimeoutMixin):
    """
    One SMTP client connection.

    @param address: the server's IP address as text (used in report texts).
    @param helohost: the name sent in EHLO/HELO.
    @param sender: envelope sender (C{""} for bounces).
    @param recipients: envelope recipients of this transaction.
    @param message: the stored message, opened for binary reading.
    @param timeout: seconds to wait for any progress (timeoutremote).
    @param tls: a client TLS connection creator to use with STARTTLS, or None for plain text only.
    @param tls_required: fail (and let the caller try the next host) rather than send in plain text.
    @param callLater: the scheduler for the timeout (a Clock in tests).
    @param keep_open: after the server's reply to the final dot, keep the
        connection (state C{idle}) for L{start_transaction} instead of
        quitting; L{quit} ends it.
    @param implicit_tls: start TLS (C{tls}) as soon as connected (SMTPS).
    @param credentials: log in with these after EHLO, inside TLS only.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    transport: interfaces.ITCPTransport  # the methods below run once connected

    def __init__(
        self,
        address: str,
        helohost: str,
        sender: str,
        recipients: Sequence[str],
        message: IO[bytes],
        timeout: float,
        tls: Any = None,
        tls_required: bool = False,
        callLater: Callable[..., Any] | None = None,
        keep_open: bool = False,
        implicit_tls: bool = False,
        credentials: Credentials | None = None,
    ) -> None:
        self.address = address
        self.keep_open = keep_open
        self.idle = False
        self.reused = False
        self.closed: Deferred[None] = Deferred()
        self.on_idle_lost: Callable[["SMTPClientProtocol"], None] | None = None
        self.helohost = helohost
        self.sender = sender
        self.recipient_list = list(recipients)
        self.message = message
        self.timeout = timeout
        self.tls = tls
        self.tls_required = tls_required
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self._auth: AuthExchange | None = None
        if callLater is not None:
            self.callLater = callLater  # type: ignore[method-assign]  # TimeoutMixin's, made to be replaced
        self.outcome = SessionOutcome()
        self.finished: Deferred[SessionOutcome] = Deferred()
        self._done = False
        self._reply_lines: list[bytes] = []
        self._reply_bytes = 0
        self._handler: Callable[[Reply], None] = self._on_greeting
        self._pending: list[Callable[[Reply], None]] = []
        self._extensions: set[bytes] = set()
        self._stage = "greeting"
        self._critical = False
        self._accepted = 0
        self._tls_active = False
        self._sender: BodySender | None = None
        self._problem: str | None = None
        self._mail_failed: Reply | None = None
        self._quit_allowed = True  # False while the server expects message text
        self.dsn: DsnFile | None = None  # the message's DSN requests (L{pymta.remote.dsnout}), set per transaction

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        self.setTimeout(self.timeout)
        # commands and the final dot are small writes that wait for a reply:
        # without TCP_NODELAY, Nagle + delayed ACK stall each for ~40 ms
        if interfaces.ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        if self.implicit_tls:
            self._stage = "tls"
            cast(interfaces.ITLSTransport, self.transport).startTLS(self.tls)

    def timeoutConnection(self) -> None:
        self._problem = "timeout"
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        self.connected = False
        if not self.closed.called:
            self.closed.callback(None)
        if self.idle:
            self.idle = False
            if self.on_idle_lost is not None:
                self.on_idle_lost(self)
        if self._done:
            self._report()
            return
        if self.reused and not self._critical:
            # a kept connection the server dropped meanwhile: nothing was
            # delivered, the caller retries on a new connection
            self.outcome.stale = True
        if self._stage == "tls":
            if self.tls_required:
                self._finish(
                    DEFERRAL,
                    f"TLS session with {self.address} failed: {tls_failure_reason(reason)}. (#4.7.5)\n",
                    next_host=True,
                )
            else:
                self._finish(DEFERRAL, f"TLS session with {self.address} failed. (#4.7.5)\n", tls_failed=True)
            return
        duplicate = "Possible duplicate! " if self._critical else ""
        before_mail = self._stage in ("greeting", "ehlo", "helo", "starttls")
        why = f" ({self._problem})" if self._problem not in (None, "timeout") else ""
        self._finish(
            DEFERRAL,
            f"Connected to {self.address} but connection died{why}. {duplicate}(#4.4.2)\n",
            next_host=before_mail,
        )

    def handshakeCompleted(self) -> None:
        """The STARTTLS handshake is done: greet again (implicit TLS: wait for the greeting)."""
        if self._stage != "tls" or self._done:
            return
        self._tls_active = True
        self.outcome.tls_used = True
        if self.implicit_tls:
            self._stage = "greeting"
            return
        self._stage = "ehlo"
        self._send(b"EHLO " + self.helohost.encode("utf-8"), self._on_ehlo)

    # -- reply parsing ------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self._done:
            return
        self.resetTimeout()
        if line.endswith(b"\r"):
            line = line[:-1]
        self._reply_lines.append(line)
        self._reply_bytes += len(line)
        if len(self._reply_lines) > MAX_REPLY_LINES or self._reply_bytes > MAX_REPLY_BYTES:
            self._drop("reply too long")
            return
        match = _CODE.match(line)
        if match is not None and line[3:4] == b"-":
            return
        code = int(match.group(1)) if match is not None else 0
        reply = Reply(code, tuple(self._reply_lines))
        self._reply_lines = []
        self._reply_bytes = 0
        if self._pending:
            handler = self._pending.pop(0)
        else:
            handler = self._handler
        handler(reply)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._drop("reply line too long")

    def _drop(self, problem: str) -> None:
        self._problem = problem
        self.clearLineBuffer()
        self.transport.abortConnection()

    def _unexpected(self, reply: Reply) -> None:
        """A reply nobody asked for (e.g. after the final one): the server is confused."""
        self._drop("unexpected reply")

    # -- sending ------------------------------------------------------------

    def _send(self, command: bytes, handler: Callable[[Reply], None]) -> None:
        self._handler = handler
        self.transport.write(command + b"\r\n")

    def _finish(
        self,
        status: str,
        text: str,
        next_host: bool = False,
        tls_failed: bool = False,
        quit: bool = False,
    ) -> None:
        if self._done:
            return
        self._done = True
        self.setTimeout(None)
        self.outcome.status = status
        self.outcome.text = text
        self.outcome.next_host = next_host
        self.outcome.tls_failed = tls_failed
        if self.transport is not None and self.connected:
            # the outcome is reported from connectionLost, once the socket is gone
            if quit and self._quit_allowed:
                self.transport.write(b"QUIT\r\n")
                self.transport.loseConnection()
            else:
                self.transport.abortConnection()
        else:
            self._report()

    def _report(self) -> None:
        if not self.finished.called:
            self.finished.callback(self.outcome)

    # -- connection reuse ---------------------------------------------------

    def _park(self, status: str, text: str) -> None:
        """The transaction is over and the session is clean: report, stay connected."""
        self._done = True
        self.idle = True
        self._stage = "idle"
        self.setTimeout(None)
        self.outcome.status = status
        self.outcome.text = text
        self._report()

    def start_transaction(self, sender: str, recipients: Sequence[str], message: IO[bytes]) -> "Deferred[SessionOutcome]":
        """Send another message on this idle connection (MAIL onwards)."""
        if not self.idle or not self.connected:
            raise RuntimeError("connection is not idle")
        self.idle = False
        self.reused = True
        self.sender = sender
        self.recipient_list = list(recipients)
        self.message = message
        self.outcome = SessionOutcome(tls_used=self._tls_active)
        self.finished = Deferred()
        self._done = False
        self._critical = False
        self._accepted = 0
        self._pending = []
        self._problem = None
        self._mail_failed = None
        self.setTimeout(self.timeout)
        self._mail()
        return self.finished

    def quit(self) -> None:
        """End an idle connection politely."""
        self.idle = False
        if self.connected and self.transport is not None:
            self.transport.write(b"QUIT\r\n")
            self.transport.loseConnection()

    # -- the dialogue -------------------------------------------------------

    def _on_greeting(self, reply: Reply) -> None:
        if reply.kind != 2:
            self._finish(
                DEFERRAL,
                f"Connected to {self.address} but greeting failed.\n{said(reply)}",
                next_host=True,
                quit=True,
            )
            return
        self._stage = "ehlo"
        self._send(b"EHLO " + self.helohost.encode("utf-8"), self._on_ehlo)

    def _on_ehlo(self, reply: Reply) -> None:
        if reply.kind == 5 and not self._tls_active:
            self._stage = "helo"
            self._send(b"HELO " + self.helohost.encode("utf-8"), self._on_helo)
            return
        if reply.kind != 2:
            self._name_rejected(reply)
            return
        self._extensions = {line[4:].split(b" ")[0].upper() for line in reply.lines[1:]}
        if not self._tls_active and self.tls is not None and b"STARTTLS" in self._extensions:
            self._stage = "starttls"
            self._send(b"STARTTLS", self._on_starttls)
            return
        self._hello_done(reply)

    def _on_helo(self, reply: Reply) -> None:
        if reply.kind != 2:
            self._name_rejected(reply)
            return
        self._hello_done(None)

    def _hello_done(self, ehlo: Reply | None) -> None:
        """After EHLO/HELO (and TLS, if any): log in when the route says so, then MAIL."""
        if self._refuse_plain():
            return
        if self.credentials is None:
            self._mail()
            return
        self._auth = AuthExchange.start(self.credentials, ehlo)
        if self._auth is None:
            self._finish(DEFERRAL, f"{self.address} does not offer AUTH PLAIN or LOGIN, which this route "
                         f"needs. (#4.7.0)\n", next_host=True, quit=True)
            return
        self._stage = "auth"
        self._send(self._auth.first(), self._on_auth)

    def _on_auth(self, reply: Reply) -> None:
        assert self._auth is not None and self.credentials is not None
        if reply.code == 235:
            self._mail()
        elif reply.code == 334:
            self._send(self._auth.answer(reply), self._on_auth)
        else:  # a deferral even when permanent: the password is the operator's to fix, not the sender's
            text = f"Connected to {self.address} but AUTH {self._auth.mechanism} as {self.credentials.login} " \
                   f"failed (see control/smarthostauth).\n{self._auth.scrub(said(reply))}"
            self._finish(DEFERRAL, text, next_host=reply.kind == 4, quit=True)

    def _name_rejected(self, reply: Reply) -> None:
        self._finish(
            DEFERRAL,
            f"Connected to {self.address} but my name was rejected.\n{said(reply)}",
            next_host=True,
            quit=True,
        )

    def _refuse_plain(self) -> bool:
        if self.credentials is not None and not self._tls_active:
            self._finish(DEFERRAL, f"Refusing to send credentials without TLS: {self.address} did not start "
                         "TLS. (#4.7.10)\n", next_host=True, quit=True)
            return True
        if self.tls_required and not self._tls_active:
            self._finish(
                DEFERRAL,
                f"{self.address} does not offer STARTTLS, which is required for this destination. (#4.7.5)\n",
                next_host=True,
                quit=True,
            )
            return True
        return False

    def _on_starttls(self, reply: Reply) -> None:
        if reply.code != 220:
            if self._refuse_plain():
                return
            self._mail()
            return
        self._stage = "tls"
        self._handler = self._unexpected
        cast(interfaces.ITLSTransport, self.transport).startTLS(self.tls)
