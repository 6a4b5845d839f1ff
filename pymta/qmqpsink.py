# -*- test-case-name: tests.test_qmqpsink -*-
"""
The queue sink of C{pymta-smtpd} on a null client (a root with
control/qmqpservers, docs/qmqp.md): a L{MessageSink} whose messages go to
the first QMQP server that answers (L{pymta.qmqpclient}) instead of the
inject socket.  The promise of the seam holds: C{finish()} fires with a
receipt only once a server has answered C{K} (the message is durable
there), so smtpd says C{250} only then; a C{Z}, a C{D} or no server
answering fails it with the refusal (C{451}/C{554}), and the client keeps
the message.

Each message is spooled to a temporary file while it arrives (QMQP states
the message's length first) and sent on the reactor
(L{pymta.qmqpprotocol.QMQPHandOver}: the same rules and timeouts as the
blocking client, and no thread waits on a slow or dead server).
C{abort()} before C{finish()} drops the spool; after it, it closes the
connection in progress and C{finish()}'s Deferred fails (no C{K}, nothing
promised).  The servers are the reader's current snapshot's, so a reload
applies to the next message.
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable, Sequence

from twisted.internet import defer

from pymta.dsn.params import MessageDsn
from pymta.interfaces import QueueReceipt
from pymta.qmqpclient import encode_envelope, send_qmqp
from pymta.qmqpprotocol import QMQPHandOver
from pymta.qmqpservers import QMQPServer
from pymta.queue.errors import EXIT_CONFIG, QueueFailure

__all__ = ["QMQPSink", "QMQPWriter"]

_SPOOL_IN_MEMORY = 1 << 20


class QMQPWriter:
    """One message on its way to a QMQP server; see the module's description."""

    def __init__(self, sink: "QMQPSink", sender: str, recipients: Sequence[str]) -> None:
        self.sink = sink
        self.sender = sender
        self.recipients = list(recipients)
        self._spool = tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY)
        self._done = False
        self._hand_over: QMQPHandOver | None = None

    def write(self, data: bytes) -> None:
        self._spool.write(data)

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # written at once: never a backlog

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        self._done = True
        servers = self.sink.servers()
        if not servers:
            self._spool.close()
            return defer.fail(QueueFailure(EXIT_CONFIG, "control/qmqpservers lists no server"))
        d: defer.Deferred[QueueReceipt]
        if self.sink.in_thread is not None:
            self._spool.seek(0)
            d = self.sink.in_thread(send_qmqp, servers, self._spool, self.sender, self.recipients)
        else:
            length = self._spool.tell()
            self._hand_over = QMQPHandOver(self.sink.reactor, servers, self._spool, length,
                                           encode_envelope(self.sender, self.recipients))
            d = self._hand_over.start()

        def closed(result: Any) -> Any:
            self._spool.close()
            return result

        return d.addBoth(closed)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._spool.close()
        elif self._hand_over is not None:
            self._hand_over.abort()


class QMQPSink:
    """
    Opens L{QMQPWriter}s.  C{servers} gives the current server list; the
    messages go out on C{reactor} (also the clock of the timeouts).  Given
    C{in_thread(f, *args)} (a Deferred of C{f}'s result, run elsewhere),
    the blocking L{send_qmqp} is run through it instead.
    """

    def __init__(self, reactor: Any, servers: Callable[[], Sequence[QMQPServer]],
                 in_thread: Callable[..., defer.Deferred] | None = None) -> None:
        self.reactor = reactor
        self.servers = servers
        self.in_thread = in_thread

    def open_message(self, sender: str, recipients: Sequence[str], *, origin: str, uid: int | None = None,
                     pid: int | None = None, dsn: MessageDsn | None = None, held: bool = False) -> QMQPWriter:
        """
        A message for the QMQP servers (C{origin}, C{uid}, C{pid}, C{dsn}:
        QMQP carries none of them).  A message to be queued C{held} (a
        filter's quarantine) cannot be: it is refused for now (the sender
        retries; the operator sees the log line).
        """
        if held:
            raise QueueFailure(EXIT_CONFIG, "a quarantined message needs the local queue; QMQP cannot hold it")
        return QMQPWriter(self, sender, recipients)
