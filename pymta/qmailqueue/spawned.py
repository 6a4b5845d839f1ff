# -*- test-case-name: tests.qmailqueue.test_spawned -*-
"""
The daemons' C{QMAILQUEUE} sink: a L{MessageSink} whose messages go to a
program with qmail-queue's interface instead of the queue.

Each message is spooled as it arrives (L{pymta.smtpd.spool.SpoolingWriter}:
memory, then an anonymous temporary file).  At C{finish()} the program is
started on the reactor (no thread, no waiting process), the spool is
written to its descriptor 0 as the pipe takes it (our own pipe, which
counts what it took: L{pymta.qmailqueue.stdinpipe}), then the envelope
to its descriptor 1, and the program's end decides
(L{pymta.qmailqueue.outcome}).  The durability promise of the seam holds
because the program's own C{pymta queue} made the message durable before
it exits 0: only then does C{finish()} fire with a receipt, whose C{qp}
is the program's process id (qmail-smtpd's C{250 ok TIME qp PID}) and
whose message id is 0 (the queue id is the program's business, as on a
null client).  A program that runs longer than its bound is killed and
the message refused for now (C{qq timeout}) at once, without waiting
for what it left running (it runs in a group of its own, killed whole:
L{pymta.qmailqueue.processgroup}).

The program runs as this process's user: the daemons' unprivileged mail
account.  A process still running as root refuses to start it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol, Sequence, cast

from twisted.internet import defer
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.dsn.params import MessageDsn
from pymta.interfaces import MessageWriter, QueueReceipt
from pymta.qmailqueue import processgroup
from pymta.qmailqueue.outcome import CUSTOM_REPLY_BYTES, program_failure
from pymta.qmailqueue.program import QmailQueueProgram
from pymta.qmailqueue.stdinpipe import start_with_pipe
from pymta.queue.envelope import encode_qq_envelope
from pymta.queue.errors import EXIT_CONFIG, EXIT_TIMEOUT, QueueFailure
from pymta.smtpd.spool import SpoolingWriter

__all__ = ["QmailQueueSink", "ProgramWriter", "ProgramStdin", "Spawn", "spawn_on", "EXIT_EXEC_FAILED", "STDERR_CAP"]

log = Logger()

#: qmail's code for a program that could not be started (C{unable to exec qq})
EXIT_EXEC_FAILED = 120
#: how much of a program's standard error goes to the log
STDERR_CAP = 2000
#: the program's descriptors besides 0 (our pipe): the envelope from us, diagnostics and its own reply to us
CHILD_FDS = {1: "w", 2: "r", 6: "r"}


class ProgramStdin(Protocol):
    """The program's descriptor 0 as the writer uses it (L{pymta.qmailqueue.stdinpipe.MessagePipe})."""

    @property
    def unsent(self) -> int:
        """Bytes written to it that the pipe did not take."""

    def write(self, data: bytes) -> None:
        """Hand on part of the message."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Pause and resume C{producer} as the pipe's backlog grows and drains."""

    def loseConnection(self) -> None:
        """Close once every byte has been taken."""

    def close(self) -> None:
        """Close now."""


#: starts a program; its descriptor 0's end is told as the protocol's childConnectionLost(0)
Spawn = Callable[[ProcessProtocol, QmailQueueProgram], tuple[IProcessTransport, ProgramStdin]]


def spawn_on(reactor: Any) -> Spawn:
    """
    Start programs with C{reactor.spawnProcess}, never as root, with
    L{CHILD_FDS} and our pipe as descriptor 0, each in a process group of
    its own (L{processgroup}).
    """

    def spawn(protocol: ProcessProtocol, program: QmailQueueProgram) -> tuple[IProcessTransport, ProgramStdin]:
        if os.geteuid() == 0:
            raise QueueFailure(EXIT_EXEC_FAILED, "this process runs as root: QMAILQUEUE programs never do")
        if not os.access(program.path, os.X_OK):
            raise QueueFailure(EXIT_EXEC_FAILED, f"{program.path}: not an executable file")
        executable, args = processgroup.command(program.path)
        transport, stdin = start_with_pipe(reactor, protocol, executable, args, CHILD_FDS, env=program.env,
                                           path=program.cwd)
        return cast(IProcessTransport, processgroup.OwnGroup(transport)), stdin

    return spawn


class _Protocol(ProcessProtocol):
    def __init__(self, writer: "ProgramWriter") -> None:
        self.writer = writer

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.writer.received(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        self.writer.lost(childFD)

    def processExited(self, reason: Failure) -> None:
        self.writer.exited(getattr(reason.value, "exitCode", None), getattr(reason.value, "signal", None))

    def processEnded(self, reason: Failure) -> None:
        self.writer.ended(getattr(reason.value, "exitCode", None), getattr(reason.value, "signal", None))


class _Backlog:
    """
    A push producer for the program's descriptor 0: its pauses are the
    writer's backlog (the pipe's end comes as C{childConnectionLost(0)},
    right after its stop).
    """

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        pass


class ProgramWriter:
    """
    One running program (a L{MessageWriter}): started when made, given
    the message by C{write()}, the envelope at C{finish()}; see the
    module's description.
    """

    def __init__(self, program: QmailQueueProgram, spawn: Spawn, clock: Any,
                 sender: str, recipients: Sequence[str]) -> None:
        self.program = program
        self._result: defer.Deferred[QueueReceipt] = defer.Deferred()
        self._settled = False
        self._finishing = False
        self._open = {0, 1}
        self._readers = {6}
        self._exit: tuple[int | None, int | None] | None = None
        self._early_loss = False
        self._custom = b""
        self._stderr = b""
        self._resume: Callable[[], None] | None = None
        self._transport: IProcessTransport | None = None
        self._stdin: ProgramStdin | None = None
        self._timer: Any = None
        self.pid = 0
        try:
            self._envelope = encode_qq_envelope(sender, recipients)
            self._transport, self._stdin = spawn(_Protocol(self), program)
        except QueueFailure as e:
            self._settle(e)
            return
        except OSError as e:
            self._settle(QueueFailure(EXIT_EXEC_FAILED, f"{program.path}: {e.strerror}"))
            return
        self.pid = self._transport.pid or 0
        self._timer = clock.callLater(program.timeout, self._timed_out)

    def write(self, data: bytes) -> None:
        if self._stdin is not None and 0 in self._open and not self._settled:
            self._stdin.write(data)

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._resume = resume
        if self._stdin is not None:
            self._stdin.registerProducer(_Backlog(pause, resume), True)

    def _unsent(self) -> int:
        return self._stdin.unsent if self._stdin is not None else 0

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        self._finishing = True
        transport = self._transport
        if transport is not None and self._stdin is not None and not self._settled:
            if 0 in self._open:
                self._stdin.loseConnection()
            if 1 in self._open:
                transport.writeToChild(1, self._envelope)
                transport.closeChildFD(1)
        return self._result

    def abort(self) -> None:
        if not self._settled:
            self._settle(QueueFailure(EXIT_TIMEOUT, "message dropped"), quiet=True)
            self._kill()
        self._result.addErrback(lambda _: None)

    # what the process does

    def received(self, fd: int, data: bytes) -> None:
        if fd == 6:
            self._custom = (self._custom + data)[:CUSTOM_REPLY_BYTES]
        elif fd == 2 and len(self._stderr) < STDERR_CAP:
            self._stderr += data[: STDERR_CAP - len(self._stderr)]

    def lost(self, fd: int) -> None:
        """
        A descriptor closed: before finish() (or for descriptor 0 with
        bytes the pipe never took) the program was not given the whole
        message, so its exit 0 cannot count; the spool goes on (to its end).
        """
        if fd in self._open and (not self._finishing or (fd == 0 and self._unsent())):
            self._early_loss = True
        self._open.discard(fd)
        self._readers.discard(fd)
        if fd == 6 and self._exit is not None:
            self.ended(*self._exit)
        if fd == 0 and self._resume is not None:
            self._resume()

    def exited(self, exit_code: int | None, signal: int | None) -> None:
        """
        The program has exited; its reply on descriptor 6 is read once that
        pipe is closed, and a process it left running with descriptor 2
        open does not hold the answer back.
        """
        self._exit = (exit_code, signal)
        if 6 not in self._readers:
            self.ended(exit_code, signal)

    def ended(self, exit_code: int | None, signal: int | None) -> None:
        if 0 in self._open and self._unsent():
            self._early_loss = True  # it ended before our pipe gave it everything
        self._open.clear()
        if self._stdin is not None:
            self._stdin.close()
        if self._resume is not None:
            self._resume()
        if self._settled:
            return
        complete = self._finishing and not self._early_loss
        self._settle(program_failure(exit_code, signal, self._custom, complete))

    def _timed_out(self) -> None:
        self._timer = None
        if not self._settled:
            self._settle(QueueFailure(EXIT_TIMEOUT, f"QMAILQUEUE program ran over {self.program.timeout:g} seconds"))
            self._kill()

    def _kill(self) -> None:
        if self._transport is not None:
            try:
                self._transport.signalProcess("KILL")
            except Exception:  # it has ended meanwhile
                pass

    def _settle(self, failure: QueueFailure | None, quiet: bool = False) -> None:
        self._settled = True
        if failure is not None and self._stdin is not None:
            self._stdin.close()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._stderr:
            text = self._stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
            log.info("qmailqueue: {path} qp {pid} said: {text}", path=self.program.path, pid=self.pid, text=text)
        if failure is None:
            self._result.callback(QueueReceipt(0, self.pid))
            return
        if not quiet:
            log.info("qmailqueue: {path} qp {pid}: {detail}", path=self.program.path, pid=self.pid, detail=str(failure))
        self._result.errback(failure)


async def _no_edits(message: Any) -> list[Any]:
    return []


class QmailQueueSink:
    """Opens spooling writers whose real writer is a L{ProgramWriter} of C{program}."""

    def __init__(self, program: QmailQueueProgram, spawn: Spawn, clock: Any) -> None:
        self.program = program
        self.spawn = spawn
        self.clock = clock

    def open_message(self, sender: str, recipients: Sequence[str], *, origin: str, uid: int | None = None,
                     pid: int | None = None, dsn: MessageDsn | None = None, held: bool = False) -> MessageWriter:
        """
        A message for the program (C{origin}, C{uid}, C{pid}, C{dsn}:
        qmail-queue's interface carries none).  A message to be queued
        C{held} (a filter's quarantine) cannot be: the program, not pymta,
        queues it, so it is refused for now (the sender retries; the
        operator sees the log line), as on a QMQP null client.
        """
        if held:
            raise QueueFailure(EXIT_CONFIG, "a quarantined message needs the local queue; QMAILQUEUE cannot hold it")
        recipients = list(recipients)

        def start() -> MessageWriter:
            return ProgramWriter(self.program, self.spawn, self.clock, sender, recipients)

        return SpoolingWriter(start, _no_edits)
