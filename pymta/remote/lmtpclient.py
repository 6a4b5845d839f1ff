# -*- test-case-name: tests.remote.test_lmtpclient -*-
"""
pymta's LMTP client (RFC 2033): one connection, one transaction at a time,
a result per recipient.

L{LMTPClientProtocol} waits for the greeting, says C{LHLO helohost} and
fires C{ready} (None, or a deferral text when the server refused us or
went away).  L{LMTPClientProtocol.transaction} then sends C{MAIL} and the
C{RCPT}s in one write (an LMTP server must support PIPELINING; with
C{reset}, an C{RSET} goes first: a kept connection's previous transaction
may have ended without DATA), C{DATA} once some recipient was accepted, the
message streamed through L{pymta.remote.datastream.DataEncoder}, and reads
one reply per accepted recipient after the final dot, in RCPT order.

Each recipient's L{DeliveryResult}, in qmail-remote's wording (C{K}, C{Z}
or C{D} by the reply's first digit, the server's text after C{Remote host
said:}):

  - refused at RCPT: C{SERVER does not like recipient.};
  - refused at MAIL or DATA: C{Connected to SERVER but sender was
    rejected.} / C{SERVER failed on DATA command.} for every recipient
    concerned;
  - after the final dot: C{SERVER accepted message.} or C{SERVER failed
    after I sent the message.}, each recipient its own reply;
  - the connection dies: C{Connected to SERVER but connection died.
    (#4.4.2)} for the recipients without a reply yet, with C{Possible
    duplicate!} once the final dot went out.  A recipient whose reply came
    keeps it.

After a transaction the connection stays open (C{idle}) for the next one.
A kept connection that turns out gone (lost before the final dot, or
C{421} before it) reports C{stale}: nothing was delivered and the caller
sends again on a new connection.  C{timeout} (control/timeoutremote)
bounds every wait for the server while a transaction or the greeting runs;
a reply line over L{MAX_LINE} bytes, or a reply over L{MAX_REPLY_LINES}
lines, drops the connection.
"""

from __future__ import annotations

import re
from functools import partial
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Sequence

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.protocols.basic import FileSender, LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymta.address import quote_address
from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS, DeliveryResult
from pymta.remote.datastream import DataEncoder
from pymta.remote.reply import Reply, said

__all__ = ["LMTPClientProtocol", "LMTPOutcome", "MAX_LINE", "MAX_REPLY_LINES"]

MAX_LINE = 4096
MAX_REPLY_LINES = 200

_CODE = re.compile(rb"^([0-9]{3})(?:[ -]|$)")


@dataclass
class LMTPOutcome:
    """One transaction's results (one per recipient, in order), or C{stale}: resend on a new connection."""

    results: list[DeliveryResult] = field(default_factory=list)
    stale: bool = False


def _status(reply: Reply) -> str:
    return SUCCESS if reply.kind == 2 else FAILURE if reply.kind == 5 else DEFERRAL


class LMTPClientProtocol(LineReceiver, TimeoutMixin):
    """
    One LMTP client connection.

    @param server: how texts name the server (the socket's path, or the address).
    @param helohost: the name sent in LHLO.
    @param timeout: seconds to wait for any progress (timeoutremote).
    @param callLater: the scheduler for the timeout (a Clock in tests).
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    transport: interfaces.ITCPTransport  # the methods below run once connected (a unix socket has these too)

    def __init__(self, server: str, helohost: str, timeout: float, callLater: Callable[..., Any] | None = None) -> None:
        self.server = server
        self.helohost = helohost
        self.timeout = timeout
        if callLater is not None:
            self.callLater = callLater  # type: ignore[method-assign]  # TimeoutMixin's, made to be replaced
        self.ready: Deferred[str | None] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.idle = False
        self.on_idle_lost: Callable[[LMTPClientProtocol], None] | None = None
        self._extensions: set[bytes] = set()
        self._lines: list[bytes] = []
        self._pending: list[Callable[[Reply], None]] = []
        self._problem = ""
        self._finished: Deferred[LMTPOutcome] | None = None
        self._recipients: list[str] = []
        self._results: list[DeliveryResult | None] = []
        self._accepted: list[int] = []
        self._mail_failed: Reply | None = None
        self._reused = False
        self._dot_sent = False
        self._message: IO[bytes] | None = None

    # -- connection -----------------------------------------------------------

    def connectionMade(self) -> None:
        self.setTimeout(self.timeout)
        if interfaces.ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)  # small commands waiting for replies: no Nagle delay
        self._pending = [self._on_greeting]

    def timeoutConnection(self) -> None:
        self._drop("timeout")

    def _drop(self, problem: str) -> None:
        self._problem = self._problem or problem
        self.clearLineBuffer()
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        self.connected = False
        if self.idle:
            self.idle = False
            if self.on_idle_lost is not None:
                self.on_idle_lost(self)
        if not self.ready.called:
            self.ready.callback(f"Connected to {self.server} but connection died{self._why()}. (#4.4.2)\n")
        if self._finished is not None:
            if self._reused and not self._dot_sent:
                self._report(LMTPOutcome(stale=True))
            else:
                duplicate = "Possible duplicate! " if self._dot_sent else ""
                text = f"Connected to {self.server} but connection died{self._why()}. {duplicate}(#4.4.2)\n"
                self._report(LMTPOutcome([r or DeliveryResult(DEFERRAL, text) for r in self._results]))
        if not self.closed.called:
            self.closed.callback(None)

    def _why(self) -> str:
        return f" ({self._problem})" if self._problem not in ("", "timeout") else ""

    def quit(self) -> None:
        """End an idle connection politely."""
        self.idle = False
        if self.connected and self.transport is not None:
            self.transport.write(b"QUIT\r\n")
            self.transport.loseConnection()

    # -- replies --------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        line = line[:-1] if line.endswith(b"\r") else line
        self._lines.append(line)
        if len(self._lines) > MAX_REPLY_LINES:
            self._drop("reply too long")
            return
        match = _CODE.match(line)
        if match is not None and line[3:4] == b"-":
            return
        reply = Reply(int(match.group(1)) if match is not None else 0, tuple(self._lines))
        self._lines = []
        if not self._pending:
            self._drop("unexpected reply")
            return
        self._pending.pop(0)(reply)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._drop("reply line too long")

    # -- greeting -------------------------------------------------------------

    def _on_greeting(self, reply: Reply) -> None:
        if reply.kind != 2:
            self._refused(f"Connected to {self.server} but greeting failed.\n{said(reply)}")
            return
        self._pending = [self._on_lhlo]
        self.transport.write(b"LHLO " + self.helohost.encode("utf-8") + b"\r\n")

    def _on_lhlo(self, reply: Reply) -> None:
        if reply.kind != 2:
            self._refused(f"Connected to {self.server} but my name was rejected.\n{said(reply)}")
            return
        self._extensions = {line[4:].split(b" ")[0].upper() for line in reply.lines[1:]}
        self._become_idle()
        self.ready.callback(None)

    def _refused(self, text: str) -> None:
        self.ready.callback(text)
        self.quit()

    def _become_idle(self) -> None:
        self.setTimeout(None)
        self.idle = True

    # -- one transaction ------------------------------------------------------

    def transaction(self, sender: str, recipients: Sequence[str], message: IO[bytes],
                    reset: bool = False) -> "Deferred[LMTPOutcome]":
        """Deliver C{message} to C{recipients} on this idle connection (with C{RSET} first when C{reset})."""
        if not self.idle or not self.connected:
            raise RuntimeError("connection is not idle")
        self.idle = False
        self._finished = Deferred()
        self._recipients = list(recipients)
        self._results = [None] * len(self._recipients)
        self._accepted = []
        self._mail_failed = None
        self._reused = reset
        self._dot_sent = False
        self._message = message
        self.setTimeout(self.timeout)
        mail = b"MAIL FROM:<" + quote_address(sender).encode("utf-8") + b">"
        if b"8BITMIME" in self._extensions:
            mail += b" BODY=8BITMIME"
        if b"SMTPUTF8" in self._extensions and not all(a.isascii() for a in [sender, *self._recipients]):
            mail += b" SMTPUTF8"
        commands = [b"RSET"] if reset else []
        self._pending = [self._on_rset] if reset else []
        commands.append(mail)
        self._pending.append(self._on_mail)
        for index, recipient in enumerate(self._recipients):
            commands.append(b"RCPT TO:<" + quote_address(recipient).encode("utf-8") + b">")
            self._pending.append(partial(self._on_rcpt, index))
        self.transport.write(b"".join(c + b"\r\n" for c in commands))
        return self._finished

    def _closing(self, reply: Reply) -> bool:
        """A kept connection's server says 421 before the message went: resend elsewhere."""
        if self._reused and reply.code == 421:
            self._drop("")
            return True
        return False

    def _on_rset(self, reply: Reply) -> None:
        if reply.kind != 2:
            self._drop("RSET refused")

    def _on_mail(self, reply: Reply) -> None:
        if not self._closing(reply) and reply.kind != 2:
            self._mail_failed = reply

    def _on_rcpt(self, index: int, reply: Reply) -> None:
        if self._closing(reply):
            return
        if self._mail_failed is None:
            if reply.kind == 2:
                self._accepted.append(index)
            else:
                self._results[index] = DeliveryResult(_status(reply),
                                                      f"{self.server} does not like recipient.\n{said(reply)}")
        if index == len(self._recipients) - 1:
            self._after_rcpts()

    def _after_rcpts(self) -> None:
        failed = self._mail_failed
        if failed is not None:
            text = f"Connected to {self.server} but sender was rejected.\n{said(failed)}"
            self._results = [DeliveryResult(_status(failed), text) for _ in self._recipients]
        if failed is not None or not self._accepted:
            self._end()
            return
        self._pending = [self._on_data]
        self.transport.write(b"DATA\r\n")

    def _on_data(self, reply: Reply) -> None:
        if self._closing(reply):
            return
        if reply.code != 354:
            status = FAILURE if reply.kind == 5 else DEFERRAL
            for index in self._accepted:
                self._results[index] = DeliveryResult(status, f"{self.server} failed on DATA command.\n{said(reply)}")
            self._end()
            return
        encoder, message = DataEncoder(), self._message
        assert message is not None

        def transform(chunk: bytes) -> bytes:
            self.resetTimeout()
            return encoder.encode(chunk)

        def sent(_: object) -> None:
            if not self.connected:
                return
            self._dot_sent = True
            self._pending = [partial(self._on_final, index) for index in self._accepted]
            self.transport.write(encoder.finish())

        def unreadable(f: Failure) -> None:
            if f.check(OSError) and self.connected:
                # the server waits for the message: the connection cannot be used again
                self._results = [r or DeliveryResult(DEFERRAL, "Unable to read message. (#4.3.0)\n")
                                 for r in self._results]
                self._report(LMTPOutcome(list(self._results)))  # type: ignore[arg-type]  # every place filled
                self._drop("")
            # otherwise the connection went away and connectionLost reports it

        FileSender().beginFileTransfer(message, self.transport, transform).addCallbacks(sent, unreadable)

    def _on_final(self, index: int, reply: Reply) -> None:
        if reply.kind == 2:
            text = f"{self.server} accepted message.\n{said(reply)}"
        else:
            text = f"{self.server} failed after I sent the message.\n{said(reply)}"
        self._results[index] = DeliveryResult(_status(reply), text)
        if not self._pending:
            self._end()

    def _end(self) -> None:
        """The transaction is over and the session clean: report, stay open for the next one."""
        self._pending = []
        self._become_idle()
        self._report(LMTPOutcome(list(self._results)))  # type: ignore[arg-type]  # every place filled

    def _report(self, outcome: LMTPOutcome) -> None:
        finished, self._finished = self._finished, None
        if finished is not None:
            finished.callback(outcome)
