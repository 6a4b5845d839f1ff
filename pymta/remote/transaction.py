# -*- test-case-name: tests.remote.test_client -*-
"""
The transaction part of pymta's SMTP client dialogue (L{pymta.remote.client}):
C{MAIL} with its parameters, the C{RCPT}s and C{DATA} - one command at a
time, or in one write when the server offers PIPELINING, the message going
only when MAIL and a recipient were accepted - then the message streamed by
L{pymta.remote.bodysender.BodySender}, the final dot and its reply.  Each
recipient's report lands in the L{SessionOutcome} (C{r}, C{h} or C{s}, in
qmail-remote's letters); the session's end is the client's to handle.

L{TransactionSteps} is a mixin of L{pymta.remote.client.SMTPClientProtocol}:
the connection, reply parsing, greeting, EHLO, TLS, AUTH and connection reuse
live there, and the attributes declared below are its.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import IO, Callable, cast

from twisted.internet import interfaces

from pymta.address import quote_address
from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.remote.bodysender import BodySender
from pymta.remote.dsnout import DsnFile, mail_suffix, rcpt_suffix
from pymta.remote.reply import Reply, said

__all__ = ["ACCEPTED", "REFUSED", "DEFERRED", "SessionOutcome", "TransactionSteps"]

# recipient reports, as qmail-remote prints them
ACCEPTED = "r"
REFUSED = "h"
DEFERRED = "s"


@dataclass
class SessionOutcome:
    """What one connection achieved; see the module docstring of L{pymta.remote.client}."""

    status: str = DEFERRAL
    text: str = ""
    recipients: dict[int, tuple[str, str]] = field(default_factory=dict)
    next_host: bool = False
    tls_failed: bool = False
    tls_used: bool = False
    retry: list[int] = field(default_factory=list)
    stale: bool = False
    dsn_passed_on: bool = False


class TransactionSteps:
    """MAIL, RCPT, DATA, the message and the final dot, for L{pymta.remote.client.SMTPClientProtocol}."""

    # the client's state and steps this part uses (set and defined by SMTPClientProtocol)
    address: str
    sender: str
    recipient_list: list[str]
    message: IO[bytes]
    dsn: DsnFile | None
    keep_open: bool
    reused: bool
    outcome: SessionOutcome
    transport: interfaces.ITCPTransport
    _extensions: set[bytes]
    _handler: Callable[[Reply], None]
    _pending: list[Callable[[Reply], None]]
    _mail_failed: Reply | None
    _accepted: int
    _stage: str
    _critical: bool
    _done: bool
    _quit_allowed: bool
    _sender: BodySender | None
    _send: Callable[[bytes, Callable[[Reply], None]], None]
    _finish: Callable[..., None]
    _park: Callable[[str, str], None]
    _unexpected: Callable[[Reply], None]
    resetTimeout: Callable[[], None]

    def _mail(self) -> None:
        self._stage = "mail"
        pipelining = b"PIPELINING" in self._extensions
        mail = b"MAIL FROM:<" + quote_address(self.sender).encode("utf-8") + b">"
        if b"SIZE" in self._extensions:
            size = _file_size(self.message)
            if size is not None:
                mail += b" SIZE=%d" % size
        if b"8BITMIME" in self._extensions:
            mail += b" BODY=8BITMIME"
        if b"SMTPUTF8" in self._extensions and not all(a.isascii() for a in [self.sender, *self.recipient_list]):
            mail += b" SMTPUTF8"
        mail += mail_suffix(self.dsn, self._extensions)
        self.outcome.dsn_passed_on = self.dsn is not None and b"DSN" in self._extensions
        if not pipelining:
            self._send(mail, self._on_mail)
            return
        # MAIL, every RCPT and DATA in one write (RFC 2920: DATA ends a group); replies arrive in order.
        commands = [mail] + [self._rcpt_command(i) for i in range(len(self.recipient_list))] + [b"DATA"]
        self._pending = [self._on_mail_pipelined, *map(self._rcpt_handler, range(len(self.recipient_list))),
                         self._on_data_pipelined]
        self._handler = self._unexpected
        self._mail_failed = None
        self.transport.write(b"".join(c + b"\r\n" for c in commands))

    def _rcpt_command(self, index: int) -> bytes:
        r = self.recipient_list[index]
        return b"RCPT TO:<" + quote_address(r).encode("utf-8") + b">" + rcpt_suffix(self.dsn, r, self._extensions)

    def _mail_refused(self, reply: Reply) -> None:
        status = FAILURE if reply.kind == 5 else DEFERRAL
        if self.reused and reply.code == 421:
            self.outcome.stale = True  # the server is closing a kept connection
        self._finish(status, f"Connected to {self.address} but sender was rejected.\n{said(reply)}", quit=True)

    def _on_mail(self, reply: Reply) -> None:
        if reply.kind in (4, 5):
            self._mail_refused(reply)
            return
        self._stage = "rcpt"
        self._next_rcpt(0)

    def _on_mail_pipelined(self, reply: Reply) -> None:
        if reply.kind in (4, 5):
            self._mail_failed = reply
        self._stage = "rcpt"

    def _next_rcpt(self, index: int) -> None:
        if index >= len(self.recipient_list):
            self._after_rcpts()
            return
        self._send(self._rcpt_command(index), self._rcpt_handler(index, then=lambda: self._next_rcpt(index + 1)))

    def _rcpt_handler(self, index: int, then: Callable[[], None] | None = None) -> Callable[[Reply], None]:
        def handle(reply: Reply) -> None:
            self._on_rcpt(index, reply)
            if self._done:
                return
            if then is not None:
                then()

        return handle

    def _on_rcpt(self, index: int, reply: Reply) -> None:
        if self._mail_failed is not None:
            return
        if reply.kind in (2, 3):
            self._accepted += 1
            self.outcome.recipients[index] = (ACCEPTED, "")
        elif reply.code == 452 and self._accepted > 0:
            self.outcome.retry.append(index)
        else:
            letter = REFUSED if reply.kind == 5 else DEFERRED
            self.outcome.recipients[index] = (letter, f"{self.address} does not like recipient.\n{said(reply)}")

    def _after_rcpts(self) -> None:
        mail_failed = self._mail_failed
        if mail_failed is not None:
            self.outcome.recipients.clear()
            self._mail_refused(mail_failed)
            return
        if self._accepted == 0:
            self._finish(FAILURE, f"Giving up on {self.address}.\n", quit=True)
            return
        self._stage = "data"
        self._send(b"DATA", self._on_data)

    def _on_data_pipelined(self, reply: Reply) -> None:
        """The reply to a pipelined DATA: the message goes only after MAIL and a recipient were accepted."""
        if self._mail_failed is None and self._accepted > 0:
            self._stage = "data"
            self._on_data(reply)
            return
        # a server that waits for the message anyway gets no QUIT (it would read it as text): dropped
        self._quit_allowed = reply.kind != 3
        self._after_rcpts()

    def _on_data(self, reply: Reply) -> None:
        if reply.code != 354 and reply.kind != 3:
            status = FAILURE if reply.kind == 5 else DEFERRAL
            self._finish(status, f"{self.address} failed on DATA command.\n{said(reply)}", quit=True)
            return
        self._stage = "message"
        self._handler = self._unexpected
        consumer = cast(interfaces.IConsumer, self.transport)  # a TCP (or TLS) transport is a consumer too
        self._sender = BodySender(self.message, consumer, self.resetTimeout, self._send_last, self._unreadable)
        self._sender.start()

    def _send_last(self, data: bytes) -> None:
        """The message's last bytes and the final dot: from here on the server may have it."""
        self._sender = None
        if self._done:
            return
        self._stage = "dot"
        self._critical = True
        self._handler = self._on_dot
        self.transport.write(data)

    def _unreadable(self, error: OSError) -> None:
        self._sender = None
        if not self._done:
            self._finish(DEFERRAL, "Unable to read message. (#4.3.0)\n")

    def _on_dot(self, reply: Reply) -> None:
        self._stage = "done"
        if reply.kind == 2:
            status, text = SUCCESS, f"{self.address} accepted message.\n{said(reply)}"
        else:
            status = FAILURE if reply.kind == 5 else DEFERRAL
            text = f"{self.address} failed after I sent the message.\n{said(reply)}"
        if self.keep_open and reply.code != 421 and reply.code != 0:
            self._park(status, text)
        else:
            self._finish(status, text, quit=True)


def _file_size(message: IO[bytes]) -> int | None:
    """The stored size of the message: RFC 1870's estimate (CRs added on the wire are not counted)."""
    try:
        return os.fstat(message.fileno()).st_size
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None

