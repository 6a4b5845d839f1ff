"""
The daemons' choice of sink (pymta.qmailqueue.hook) and smtpd's replies
with a QMAILQUEUE program (a fake spawner; the real one: test_end_to_end).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SynchronousTestCase

from pymta.qmailqueue.hook import QmailQueueHook
from pymta.qmailqueue.program import QmailQueueProgram
from pymta.qmailqueue.hook import DaemonSink
from pymta.qmailqueue.spawned import QmailQueueSink
from pymta.qmqpsink import QMQPSink
from pymta.smtpd.endofdata import EndOfDataStage, StepVerdict
from tests.qmailqueue.test_spawned import FakeProcess
from tests.smtpd.helpers import MemorySink, Session, make_root


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.processes: list[FakeProcess] = []
        self.programs: list[QmailQueueProgram] = []
        self.clock = task.Clock()

    def spawn(self, protocol: ProcessProtocol, program: QmailQueueProgram) -> Any:
        self.programs.append(program)
        self.processes.append(FakeProcess(protocol))
        return self.processes[-1], self.processes[-1].stdin

    def hook(self, **environ: str) -> QmailQueueHook:
        return QmailQueueHook("/root", self.clock, lambda: 2, environ=environ, spawn=self.spawn)



class HookTests(Base):
    def test_no_program_is_the_queue(self) -> None:
        default = MemorySink()
        self.assertIs(self.hook().sink_for(default, {"TCPREMOTEIP": "192.0.2.1"}), default)
        self.assertIs(self.hook(QMAILQUEUE="/bin/scan").sink_for(default, {"QMAILQUEUE": ""}), default)

    def test_the_daemons_program_or_the_rules(self) -> None:
        sink = self.hook(QMAILQUEUE="/bin/scan").sink_for(MemorySink(), {"TCPREMOTEIP": "192.0.2.1"})
        assert isinstance(sink, QmailQueueSink)
        self.assertEqual((sink.program.path, sink.program.timeout), ("/bin/scan", 2))
        self.assertEqual(sink.program.env["TCPREMOTEIP"], "192.0.2.1")
        sink = self.hook().sink_for(MemorySink(), {"QMAILQUEUE": "/bin/outside"})
        assert isinstance(sink, QmailQueueSink)
        self.assertEqual(sink.program.path, "/bin/outside")

    def test_the_program_wins_over_a_null_clients_qmqp_servers(self) -> None:
        null_client = QMQPSink(None, lambda: [], in_thread=lambda f, *a: None)
        sink = self.hook(QMAILQUEUE="/bin/scan").sink_for(null_client, {})
        self.assertIsInstance(sink, QmailQueueSink)


class DaemonSinkTests(Base):
    """pymta-send's bounces: through the program its environment names (as qmail-send's through qmail-queue), else the queue."""

    def test_without_a_program_the_queue(self) -> None:
        opened: list[tuple[str, list[str], dict[str, Any]]] = []
        default = MemorySink()
        memory_open = default.open_message

        def open_message(sender: str, recipients: list[str], **kw: Any) -> Any:
            opened.append((sender, recipients, kw))
            return memory_open(sender, recipients, origin="from network")

        default.open_message = open_message  # type: ignore[method-assign]  # records what the queue is told
        writer = DaemonSink(self.hook(), default).open_message("", ["a@x.example"], origin="for bounce", uid=0, pid=1)
        writer.write(b"Subject: failure notice\n\nbounce\n")
        self.successResultOf(writer.finish())
        self.assertEqual((len(default.queued), self.processes), (1, []))
        self.assertEqual(opened, [("", ["a@x.example"], {"origin": "for bounce", "uid": 0, "pid": 1})])

    def test_the_program_of_the_daemons_environment(self) -> None:
        default = MemorySink()
        sink = DaemonSink(self.hook(QMAILQUEUE="/bin/scan"), default)
        writer = sink.open_message("", ["a@x.example"], origin="for bounce", uid=0, pid=1)
        writer.write(b"Subject: failure notice\n\nbounce\n")
        d = writer.finish()
        [process] = self.processes
        self.assertEqual(self.programs[0].path, "/bin/scan")
        self.assertEqual((process.written[0], process.written[1]),
                         (b"Subject: failure notice\n\nbounce\n", b"F\0Ta@x.example\0\0"))
        process.end(0)
        self.assertEqual(self.successResultOf(d).qp, 4321)
        self.assertEqual(default.opened, [])


class SmtpdTests(Base):
    """smtpd's end of DATA with a program: 250 only after its exit 0; its refusals as qmail-smtpd says them."""

    def session(self, peer: str = "192.0.2.7", replies: tuple[str, ...] = ()) -> Session:
        root = make_root(self.mktemp())
        s = Session(root, rules='192.0.2.7:allow,QMAILQUEUE="/usr/local/bin/scan"\n:allow', peer=peer)
        s.context.qmailqueue = self.hook()
        s.take()
        s.cmd("HELO client.example")
        s.cmd("MAIL FROM:<a@x.example>")
        s.cmd("RCPT TO:<b@y.example>")
        s.cmd("DATA")
        self.assertEqual(s.send(b"Subject: s\r\n\r\nbody\r\n.\r\n"), list(replies))
        return s

    def test_250_after_exit_0_with_the_programs_pid(self) -> None:
        s = self.session()
        process = self.processes[0]
        self.assertEqual(self.programs[0].path, "/usr/local/bin/scan")
        self.assertEqual(self.programs[0].env["TCPREMOTEIP"], "192.0.2.7")
        self.assertTrue(process.written[0].startswith(b"Received: from unknown (HELO client.example) (192.0.2.7)"), process.written[0])
        self.assertTrue(process.written[0].endswith(b"\nSubject: s\n\nbody\n"))
        self.assertEqual(process.written[1], b"Fa@x.example\0Tb@y.example\0\0")
        process.end(0)
        self.assertEqual(s.take(), ["250 ok 1800000000 qp 4321"])
        self.assertEqual(s.sink.queued, [])

    def test_exit_31_is_554(self) -> None:
        s = self.session()
        self.processes[0].end(31)
        self.assertEqual(s.take(), ["554 mail server permanently rejected message (#5.3.0)"])
        self.assertEqual(s.cmd("MAIL FROM:<a@x.example>"), ["250 ok"])

    def test_exit_71_is_451(self) -> None:
        s = self.session()
        self.processes[0].end(71)
        self.assertEqual(s.take(), ["451 mail server temporarily rejected message (#4.3.0)"])

    def test_exit_82_is_its_reply(self) -> None:
        s = self.session()
        self.processes[0].end(82, reply=b"Dcustom no thanks (#5.7.1)")
        self.assertEqual(s.take(), ["554 custom no thanks (#5.7.1)"])

    def test_a_hanging_program_is_451_after_the_bound(self) -> None:
        s = self.session()
        self.clock.advance(2)
        self.assertEqual(s.take(), ["451 qq timeout (#4.3.0)"])
        self.assertEqual(self.processes[0].signals, ["KILL"])

    def test_other_clients_go_to_the_queue(self) -> None:
        s = self.session(peer="198.51.100.9", replies=("250 ok 1800000000 qp 4001",))
        self.assertEqual(self.processes, [])
        self.assertEqual(len(s.sink.queued), 1)


class _TagStep:
    """An end-of-data step that adds a header field to every message."""

    def for_transaction(self, facts: Any) -> "_TagStep":
        return self

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.succeed(None)

    def at_end_of_data(self, message: Any) -> "defer.Deferred[StepVerdict]":
        return defer.succeed(StepVerdict(add=(b"X-Step: checked\n",)))


class StepsTests(Base):
    def test_the_end_of_data_steps_run_before_the_program(self) -> None:
        root = make_root(self.mktemp())
        s = Session(root, rules=':allow,QMAILQUEUE="/usr/local/bin/scan"', end_of_data=EndOfDataStage([_TagStep()]))
        s.context.qmailqueue = self.hook()
        s.take()
        for line in ("HELO client.example", "MAIL FROM:<a@x.example>", "RCPT TO:<b@y.example>", "DATA"):
            s.cmd(line)
        self.assertEqual(s.send(b"Subject: s\r\n\r\nbody\r\n.\r\n"), [])
        process = self.processes[0]
        self.assertTrue(process.written[0].startswith(b"X-Step: checked\nReceived: from unknown"), process.written[0])
        process.end(0)
        self.assertEqual(s.take(), ["250 ok 1800000000 qp 4321"])


class QmtpTests(Base):
    """The QMTP server (and the QMQP server that subclasses it) shares smtpd's choice."""

    def test_the_rules_program_answers_for_qmtp(self) -> None:
        from tests.qmtpd.test_protocol import Session as QmtpSession, qmtp_message

        s = QmtpSession(make_root(self.mktemp(), rcpthosts="example.org"),
                        rules='192.0.2.7:allow,QMAILQUEUE="/usr/local/bin/scan"\n:allow')
        self.addCleanup(s.close)
        s.context.qmailqueue = self.hook()
        self.assertEqual(s.send(qmtp_message(b"Subject: hi\n\nbody\n", b"a@elsewhere.example", [b"joe@example.org"])), [])
        process = self.processes[0]
        self.assertEqual(process.written[1], b"Fa@elsewhere.example\0Tjoe@example.org\0\0")
        self.assertTrue(process.written[0].endswith(b"Subject: hi\n\nbody\n"))
        process.end(31)
        self.assertEqual(s.replies(), [b"Dmail server permanently rejected message (#5.3.0)"])
        self.assertEqual(s.sink.queued, [])
