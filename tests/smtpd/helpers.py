"""Shared pieces of the smtpd tests: a control root, an in-memory sink, a session driver."""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import implementer

from pymta.control import ControlReader
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import ListenerSettings, SMTPDContext
from pymta.smtpd.endofdata import EndOfDataStage
from pymta.smtpd.factory import SMTPFactory


def make_root(base: str, **controls: str) -> str:
    """A root with control files; values are file contents (a trailing newline is added)."""
    os.makedirs(os.path.join(base, "control"), exist_ok=True)
    controls.setdefault("me", "mx.example.org")
    for name, text in controls.items():
        with open(os.path.join(base, "control", name), "w") as f:
            f.write(text + "\n")
    return base


class MemoryWriter:
    def __init__(self, sink: "MemorySink", sender: str, recipients: list[str]) -> None:
        self.sink = sink
        self.sender = sender
        self.recipients = recipients
        self.chunks: list[bytes] = []
        self.aborted = False
        self.finished = False

    def write(self, data: bytes) -> None:
        assert not self.aborted and not self.finished
        self.chunks.append(data)

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # nothing is held back: never a backlog

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def finish(self) -> defer.Deferred:
        self.finished = True
        if self.sink.refuse is not None:
            return defer.fail(self.sink.refuse)
        if self.sink.hold:
            d: defer.Deferred = defer.Deferred()
            self.sink.held.append((d, self))
            return d
        self.sink.queued.append(self)
        return defer.succeed(QueueReceipt(len(self.sink.queued), 4000 + len(self.sink.queued)))

    def abort(self) -> None:
        self.aborted = True
        self.sink.aborted.append(self)


class MemorySink:
    """A MessageSink keeping messages in memory; can refuse or hold finish()."""

    def __init__(self) -> None:
        self.opened: list[MemoryWriter] = []
        self.queued: list[MemoryWriter] = []
        self.aborted: list[MemoryWriter] = []
        self.refuse: QueueRefused | None = None
        self.hold = False
        self.held: list[tuple[defer.Deferred, MemoryWriter]] = []

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None, dsn=None, held=False):  # type: ignore[no-untyped-def]
        assert origin == "from network"
        w = MemoryWriter(self, sender, list(recipients))
        w.dsn = dsn
        w.quarantined = held
        self.opened.append(w)
        return w

    def release(self) -> None:
        for d, w in self.held:
            self.queued.append(w)
            d.callback(QueueReceipt(len(self.queued), 4000 + len(self.queued)))
        self.held = []


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):
    """A StringTransport that records startTLS calls."""

    tls_started = None

    def startTLS(self, ctx, normal=True):  # type: ignore[no-untyped-def]
        self.tls_started = ctx


class Session:
    """Drives one SMTPServerProtocol over a StringTransport."""

    def __init__(
        self,
        root: str,
        *,
        sink: MemorySink | None = None,
        rules: str = "",
        settings: ListenerSettings | None = None,
        peer: str = "192.0.2.7",
        tls_transport: bool = False,
        context: SMTPDContext | None = None,
        **context_args: object,
    ) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.sink = sink or MemorySink()
        if context is None:
            context = SMTPDContext(
                reader=ControlReader(root), sink=self.sink, clock=self.clock, rules=AccessRules.parse(rules), **context_args  # type: ignore[arg-type]
            )
        self.context = context
        self.factory = SMTPFactory(context, settings)
        self.proto = self.factory.buildProtocol(None)
        cls = TLSStringTransport if tls_transport else StringTransport
        self.transport = cls(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 25), peerAddress=IPv4Address("TCP", peer, 40000)
        )
        self.proto.makeConnection(self.transport)

    def take(self) -> list[str]:
        """Reply lines sent since the last call."""
        out = self.transport.value().decode("utf-8")
        self.transport.clear()
        return [line for line in out.split("\r\n") if line]

    def send(self, data: bytes) -> list[str]:
        self.proto.dataReceived(data)
        return self.take()

    def cmd(self, line: str) -> list[str]:
        return self.send(line.encode("utf-8") + b"\r\n")

    def close(self) -> None:
        if self.proto._mode != "closed":
            from twisted.internet.error import ConnectionDone
            from twisted.python.failure import Failure

            self.proto.connectionLost(Failure(ConnectionDone()))


def relay_session(testcase: unittest.SynchronousTestCase, stage: EndOfDataStage, rules: str, **context_args: object) -> Session:
    """A Session past EHLO, relaying to example.org, whose end-of-data steps are C{stage}; closed at cleanup."""
    s = Session(make_root(os.path.abspath(testcase.mktemp()), rcpthosts="example.org"), rules=rules, **context_args)
    s.context.end_of_data = stage
    testcase.addCleanup(s.close)
    s.take()
    s.cmd("EHLO client.example")
    return s


def send_to_bob(s: Session, message: bytes) -> list[str]:
    """Every reply to MAIL from alice@example.com, RCPT to bob@example.org, DATA and C{message} (LF line ends)."""
    replies = s.cmd("MAIL FROM:<alice@example.com>") + s.cmd("RCPT TO:<bob@example.org>") + s.cmd("DATA")
    return replies + s.send(message.replace(b"\n", b"\r\n") + b".\r\n")
