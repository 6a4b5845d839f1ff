"""
The daemons' QMAILQUEUE sink with a fake spawner and task.Clock: the
program starts at finish(), gets the message on fd 0 and the envelope on
fd 1, and its end (or its time bound) decides what finish() says.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import defer, error, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from pymta.interfaces import QueueReceipt
from pymta.qmailqueue import processgroup
from pymta.qmailqueue.program import QmailQueueProgram
from pymta.qmailqueue.spawned import CHILD_FDS, ProgramWriter, QmailQueueSink
from pymta.qmailqueue.stdinpipe import start_with_pipe
from pymta.queue.errors import QueueFailure
from pymta.smtpd import spool
from tests.waiting import eventually, process_ended


class FakeStdin:
    """The program's descriptor 0 (a L{ProgramStdin}): what it is given goes to its process's records."""

    def __init__(self, process: "FakeProcess") -> None:
        self.process = process
        self.producer: Any = None
        #: bytes the pipe never took, as a test says
        self.unsent = 0
        self.closed_at_once = False

    def write(self, data: bytes) -> None:
        assert 0 not in self.process.closed, "write to closed fd 0"
        self.process.written[0] += data

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def loseConnection(self) -> None:
        self.process.closed.append(0)

    def close(self) -> None:
        self.closed_at_once = True


class FakeProcess:
    """A process transport that records what it is given, per descriptor."""

    def __init__(self, protocol: ProcessProtocol, pid: int = 4321) -> None:
        self.protocol = protocol
        self.pid: int | None = pid
        self.written: dict[int, bytes] = {0: b"", 1: b""}
        self.closed: list[int] = []
        self.signals: list[str] = []
        self.stdin = FakeStdin(self)

    def writeToChild(self, fd: int, data: bytes) -> None:
        assert fd not in self.closed, f"write to closed fd {fd}"
        self.written[fd] += data

    def closeChildFD(self, fd: int) -> None:
        self.closed.append(fd)

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def end(self, exit_code: int | None, signal: int | None = None, reply: bytes = b"", stderr: bytes = b"") -> None:
        if reply:
            self.protocol.childDataReceived(6, reply)
        if stderr:
            self.protocol.childDataReceived(2, stderr)
        for fd in (0, 1, 2, 6):
            self.protocol.childConnectionLost(fd)
        self.pid = None
        reason = error.ProcessDone(0) if exit_code == 0 else error.ProcessTerminated(exit_code, signal)
        self.protocol.processEnded(Failure(reason))


class SinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.processes: list[FakeProcess] = []
        self.programs: list[QmailQueueProgram] = []
        self.program = QmailQueueProgram("/usr/local/bin/scan", "/root", (("QMAILQUEUE", "/usr/local/bin/scan"),), 60)

    def spawn(self, protocol: ProcessProtocol, program: QmailQueueProgram) -> Any:
        process = FakeProcess(protocol)
        self.processes.append(process)
        self.programs.append(program)
        return process, process.stdin

    def message(self, body: bytes = b"Subject: s\n\nbody\n", recipients: tuple[str, ...] = ("b@x.example", "c@y.example")) -> "defer.Deferred[QueueReceipt]":
        sink = QmailQueueSink(self.program, self.spawn, self.clock)
        writer = sink.open_message("a@app.example", list(recipients), origin="from network")
        writer.write(b"Received: x\n")
        writer.write(body)
        self.assertEqual(self.processes, [], "the program starts at finish(), not before")
        return writer.finish()

    def test_message_on_fd0_envelope_on_fd1_then_receipt(self) -> None:
        d = self.message()
        process = self.processes[0]
        self.assertEqual(self.programs, [self.program])
        self.assertEqual(process.written[0], b"Received: x\nSubject: s\n\nbody\n")
        self.assertEqual(process.written[1], b"Fa@app.example\0Tb@x.example\0Tc@y.example\0\0")
        self.assertEqual(process.closed, [0, 1])
        self.assertNoResult(d)
        process.end(0)
        self.assertEqual(self.successResultOf(d), QueueReceipt(0, 4321))

    def test_the_answer_comes_at_exit_once_fd6_is_closed(self) -> None:
        d = self.message()
        process = self.processes[0]
        process.protocol.childDataReceived(6, b"Dnot this one (#5.7.1)")
        process.protocol.processExited(Failure(error.ProcessTerminated(82)))
        self.assertNoResult(d)  # its reply may still be on the way
        process.protocol.childConnectionLost(6)
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual(failure.value.text, "not this one (#5.7.1)")
        process.end(82)  # descriptor 2, held by what it left running, closes later: nothing changes

    def test_a_process_left_running_with_stderr_does_not_hold_the_answer(self) -> None:
        d = self.message()
        process = self.processes[0]
        process.protocol.childConnectionLost(6)
        process.protocol.processExited(Failure(error.ProcessDone(0)))
        self.assertEqual(self.successResultOf(d), QueueReceipt(0, 4321))

    def test_a_big_message_goes_in_pieces(self) -> None:
        body = b"Subject: big\n\n" + b"x" * (spool.CHUNK_BYTES * 3) + b"\n"
        d = self.message(body)
        self.assertEqual(self.processes[0].written[0], b"Received: x\n" + body)
        self.processes[0].end(0)
        self.successResultOf(d)

    def test_exit_31_is_permanent(self) -> None:
        d = self.message()
        self.processes[0].end(31, stderr=b"virus found\n")
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("mail server permanently rejected message (#5.3.0)", True))

    def test_exit_71_is_temporary(self) -> None:
        d = self.message()
        self.processes[0].end(71)
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("mail server temporarily rejected message (#4.3.0)", False))

    def test_exit_82_with_its_reply_on_fd6(self) -> None:
        d = self.message()
        self.processes[0].end(82, reply=b"Dcustom no thanks (#5.7.1)")
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("custom no thanks (#5.7.1)", True))

    def test_killed_is_a_crash(self) -> None:
        d = self.message()
        self.processes[0].end(None, signal=9)
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("qq crashed (#4.3.0)", False))

    def test_over_the_bound_it_is_killed_and_refused_at_once(self) -> None:
        d = self.message()
        self.clock.advance(59)
        self.assertNoResult(d)
        self.clock.advance(1)
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("qq timeout (#4.3.0)", False))
        self.assertEqual(self.processes[0].signals, ["KILL"])
        self.processes[0].end(None, signal=9)  # its end later changes nothing
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def writer(self) -> ProgramWriter:
        """A started program, as the spool replays the message into it."""
        return ProgramWriter(self.program, self.spawn, self.clock, "", ["b@x.example"])

    def test_a_program_that_stops_reading_did_not_queue_it(self) -> None:
        real = self.writer()
        real.write(b"m\n")
        process = self.processes[0]
        process.protocol.childConnectionLost(0)  # it closed its descriptor 0
        real.write(b"more\n")
        d = real.finish()
        self.assertEqual(process.written[0], b"m\n")
        self.assertEqual(process.closed, [1])
        process.end(0)
        failure = self.failureResultOf(d, QueueFailure)
        self.assertEqual(failure.value.text, "qq read error (#4.3.0)")

    def test_exit_before_finish_is_its_answer(self) -> None:
        real = self.writer()
        process = self.processes[0]
        process.end(31)
        real.write(b"more\n")
        failure = self.failureResultOf(real.finish(), QueueFailure)
        self.assertTrue(failure.value.permanent)
        self.assertEqual((process.written[0], process.closed), (b"", []))
        real = self.writer()
        self.processes[1].end(0)
        failure = self.failureResultOf(real.finish(), QueueFailure)
        self.assertEqual(failure.value.text, "qq read error (#4.3.0)")

    def test_a_program_that_cannot_start_is_refused_for_now(self) -> None:
        def spawn(protocol: ProcessProtocol, program: QmailQueueProgram) -> Any:
            raise QueueFailure(120, "/usr/local/bin/scan: not an executable file")

        writer = QmailQueueSink(self.program, spawn, self.clock).open_message("", ["b@x.example"], origin="x")
        writer.write(b"m\n")
        failure = self.failureResultOf(writer.finish(), QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("unable to exec qq (#4.3.0)", False))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_quarantined_message_is_refused_for_now(self) -> None:
        """The program queues the message, so a filter's quarantine (held) cannot be kept: 4xx, nothing run."""
        sink = QmailQueueSink(self.program, self.spawn, self.clock)
        with self.assertRaises(QueueFailure) as caught:
            sink.open_message("a@app.example", ["b@x.example"], origin="from network", held=True)
        self.assertFalse(caught.exception.permanent)
        self.assertIn("QMAILQUEUE cannot hold it", caught.exception.detail)
        self.assertEqual(self.processes, [])

    def test_an_address_too_long_starts_nothing(self) -> None:
        d = self.message(recipients=("b" * 1100 + "@x.example",))
        failure = self.failureResultOf(d, QueueFailure)
        self.assertTrue(failure.value.permanent)
        self.assertEqual(self.processes, [])

    def test_abort_kills_a_running_program(self) -> None:
        real = self.writer()
        real.abort()
        self.assertEqual(self.processes[0].signals, ["KILL"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def finish_with_a_full_pipe(self) -> tuple["defer.Deferred[QueueReceipt]", FakeProcess, bytes]:
        """
        A message of several pieces given to a program whose pipe is full
        after the first piece: finish()'s result, the process and the body.
        """
        paused: list[bool] = []

        def spawn(protocol: ProcessProtocol, program: QmailQueueProgram) -> Any:
            process, stdin = self.spawn(protocol, program)
            original = stdin.write

            def write(data: bytes) -> None:
                original(data)
                if not paused:
                    paused.append(True)
                    stdin.producer.pauseProducing()

            stdin.write = write  # type: ignore[method-assign]  # the full pipe stands in
            return process, stdin

        body = b"Subject: s\n\n" + b"y" * (spool.CHUNK_BYTES * 4)
        writer = QmailQueueSink(self.program, spawn, self.clock).open_message("", ["b@x.example"], origin="x")
        writer.write(body)
        return writer.finish(), self.processes[0], body

    def test_the_pipe_backlog_pauses_the_spool(self) -> None:
        d, process, body = self.finish_with_a_full_pipe()
        self.assertEqual(process.written[0], b"Subject: s\n")
        self.assertEqual(process.closed, [])
        process.stdin.producer.resumeProducing()
        self.assertEqual(process.written[0], body)
        self.assertEqual(process.closed, [0, 1])
        process.end(0)
        self.successResultOf(d)

    def test_a_pipe_broken_mid_message_is_no_receipt_even_at_exit_0(self) -> None:
        # the pipe stops its producer, then tells the protocol: the spool must not run on to finish() meanwhile
        d, process, _ = self.finish_with_a_full_pipe()
        process.stdin.producer.stopProducing()
        process.stdin.unsent = 100
        process.protocol.childConnectionLost(0)  # the program closed its descriptor 0
        self.assertEqual(process.written[0], b"Subject: s\n", "nothing more is written to a closed pipe")
        process.end(0)
        self.assertIn("before it was given the whole message", str(self.failureResultOf(d, QueueFailure).value))

    def test_a_pipe_closed_with_bytes_unsent_after_finish_is_no_receipt(self) -> None:
        writer = QmailQueueSink(self.program, self.spawn, self.clock).open_message("", ["b@x.example"], origin="x")
        writer.write(b"Subject: s\n\nbody\n")
        d = writer.finish()
        self.processes[0].stdin.unsent = 8  # the pipe broke with the tail still ours
        self.processes[0].protocol.childConnectionLost(0)
        self.processes[0].end(0)
        self.failureResultOf(d, QueueFailure)

    def test_a_program_that_ends_before_the_pipe_took_everything_is_no_receipt(self) -> None:
        """The program's end may come before the pipe's: bytes still unsent then mean it did not read them all."""
        d = self.message()
        process = self.processes[0]
        process.stdin.unsent = 5
        for fd in (1, 2, 6):
            process.protocol.childConnectionLost(fd)
        process.protocol.processEnded(Failure(error.ProcessDone(0)))
        self.assertIn("before it was given the whole message", str(self.failureResultOf(d, QueueFailure).value))
        self.assertTrue(process.stdin.closed_at_once)

    def test_a_program_that_read_everything_gets_its_receipt_before_the_pipe_is_seen_closed(self) -> None:
        d = self.message()
        process = self.processes[0]
        for fd in (1, 2, 6):
            process.protocol.childConnectionLost(fd)
        process.protocol.processEnded(Failure(error.ProcessDone(0)))
        self.assertEqual(self.successResultOf(d), QueueReceipt(0, 4321))
        self.assertTrue(process.stdin.closed_at_once)


#: the unprivileged account live programs run as when the tests run as root (Twisted's setuid needs a passwd entry)
NOBODY = 65534


class LiveProgramTests(TestCase):
    """Real programs (as nobody when the test runs as root) that leave the message unread."""

    def run_program(self, script: str, size: int, timeout: float = 30) -> "defer.Deferred[QueueReceipt]":
        self.base = tempfile.mkdtemp(prefix="pymta-qq-live-")
        os.chmod(self.base, 0o777)  # the program may leave a file here
        self.addCleanup(shutil.rmtree, self.base, True)
        path = os.path.join(self.base, "qq")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(path, 0o755)
        program = QmailQueueProgram(path, "/", (("PATH", "/usr/bin:/bin"),), timeout)
        ids = {"uid": NOBODY, "gid": NOBODY} if os.geteuid() == 0 else {}

        def spawn(protocol: ProcessProtocol, program: QmailQueueProgram) -> Any:
            # spawn_on's way, as nobody (spawn_on itself refuses to run under root)
            executable, args = processgroup.command(program.path)
            transport, stdin = start_with_pipe(reactor, protocol, executable, args, CHILD_FDS, env=dict(program.env),
                                               path=program.cwd, **ids)
            return processgroup.OwnGroup(transport), stdin

        writer = QmailQueueSink(program, spawn, reactor).open_message("a@x.example", ["b@y.example"], origin="x")
        writer.write(b"Subject: s\n\n" + b"x" * size + b"\n")
        return writer.finish()

    async def assert_unread(self, script: str) -> None:
        with self.assertRaises(QueueFailure) as caught:
            await self.run_program(script, 1000000)
        self.assertIn("exited 0 before it was given the whole message", str(caught.exception))

    async def test_a_program_that_closes_its_stdin_and_exits_0_gets_no_receipt(self) -> None:
        for _ in range(3):
            await self.assert_unread("exec 0<&-; sleep 0.2; exit 0\n")

    async def test_a_program_that_reads_a_little_and_exits_0_gets_no_receipt(self) -> None:
        await self.assert_unread("head -c 10 >/dev/null; exit 0\n")

    async def test_a_program_that_reads_it_all_gets_a_receipt(self) -> None:
        receipt = await self.run_program("cat >/dev/null; cat <&1 >/dev/null; exit 0\n", 1000000)
        self.assertEqual(receipt.message_id, 0)

    async def test_over_its_bound_the_program_is_killed_with_what_it_started(self) -> None:
        if processgroup.SETSID is None:
            raise SkipTest("no setsid(1) here: only the program itself is killed")
        started = ('sh -c \'echo $$ > "$0"/helper; exec sleep 600\' "$(dirname "$0")" & '
                   'cat >/dev/null; exec sleep 600\n')
        with self.assertRaises(QueueFailure) as caught:
            await self.run_program(started, 10, timeout=1)
        self.assertIn("ran over", str(caught.exception))
        helper = os.path.join(self.base, "helper")
        await eventually(lambda: os.path.exists(helper) and open(helper).read().strip(), what="the helper's pid")
        with open(helper) as f:
            pid = int(f.read())
        await eventually(lambda: process_ended(pid), what="the helper (holding fd 6) killed with the program")
