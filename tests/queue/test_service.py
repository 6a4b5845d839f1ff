"""
Integration tests for pymta.queue.service: the whole pymta-send service on
the real reactor - in-process sink, inject socket, trigger FIFO, control
socket (through the real C{pymta ctl} command in a child process), pid
file, signals, and the deferring stand-in channel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from twisted.internet import defer, reactor, task, threads, utils
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from pymta.control import ControlError, ControlReader
from pymta.interfaces import Channel, MessageSink
from pymta.qmailqueue.hook import DaemonSink
from pymta.qmailqueue.spawned import EXIT_EXEC_FAILED
from pymta.queue.errors import QueueFailure
from pymta.queue.service import NoDeliveryChannel, build_send_service, pid_file_path
from tests.queue.test_scheduler import RecordingChannel, make_root, queue_message, write_control

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def wait_for(predicate, timeout: float = 10.0) -> None:
    """Poll C{predicate} on the reactor until true (bounded in time)."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached in time")


def run_ctl(root: str, *args: str) -> "defer.Deferred[tuple[bytes, bytes, int]]":
    env = dict(os.environ, PYTHONPATH=PROJECT)
    return utils.getProcessOutputAndValue(
        sys.executable, ["-m", "pymta.cli.main", "ctl", "--root", root, *args], env=env, path=PROJECT
    )


class SendServiceTests(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root, self.layout = make_root(self, short=True)
        self.local = RecordingChannel()
        self.remote = RecordingChannel()
        self.lines: list[str] = []

        def observe(event: dict) -> None:
            if "qmail_line" in event:
                self.lines.append(event["qmail_line"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def start(self, channels="default", **kw):
        if channels == "default":
            channels = {"local": self.local, "remote": self.remote}
        service, sink = build_send_service(self.root, ControlReader(self.root), channels, reactor, **kw)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        self.service = service
        return service, sink

    async def test_in_process_sink_delivers_at_once(self) -> None:
        _, sink = self.start()
        writer = sink.open_message("a@mail.example", ["bob@mail.example", "x@other.example"], origin="by uid 0")
        writer.write(b"Subject: hi\n\nbody\n")
        receipt = await writer.finish()
        await wait_for(lambda: self.local.jobs and self.remote.jobs)
        self.assertEqual(self.local.jobs[0].message_id, receipt.message_id)
        await wait_for(lambda: f"end msg {receipt.message_id}" in self.lines)
        # the message file goes with the next batch of unlinks, after the end msg line
        await wait_for(lambda: not os.path.exists(self.layout.mess(receipt.message_id)))

    async def test_channels_are_made_from_the_sink_the_service_returns(self) -> None:
        made = []

        def channels(sink: MessageSink) -> dict[str, Channel]:  # a channel factory, as pymta.queue.tap makes
            made.append(sink)
            return {"local": self.local, "remote": self.remote}

        _, sink = self.start(channels)
        # the queue's sink, through QMAILQUEUE when this process's environment names a program
        [given] = made
        assert isinstance(given, DaemonSink)
        self.assertIs(given.default, sink)
        # what a channel writes through it (a forward) reaches the scheduler at once
        writer = made[0].open_message("a@mail.example", ["bob@mail.example"], origin="by alias")
        writer.write(b"Subject: forwarded\n\nbody\n")
        receipt = await writer.finish()
        await wait_for(lambda: f"end msg {receipt.message_id}" in self.lines)
        self.assertEqual([job.message_id for job in self.local.jobs], [receipt.message_id])

    async def test_a_forward_goes_through_the_environments_qmailqueue(self) -> None:
        """A channel's forward runs the program QMAILQUEUE names, as qmail-local's qmail-queue would."""
        made = []

        def channels(sink: MessageSink) -> dict[str, Channel]:
            made.append(sink)
            return {"local": self.local, "remote": self.remote}

        os.environ["QMAILQUEUE"] = os.path.join(self.root, "no-such-filter")
        self.addCleanup(os.environ.pop, "QMAILQUEUE")
        self.start(channels)
        writer = made[0].open_message("a@mail.example", ["bob@mail.example"], origin="by alias")
        writer.write(b"Subject: forwarded\n\nbody\n")
        failure = await self.assertFailure(writer.finish(), QueueFailure)
        self.assertEqual(failure.exit_code, EXIT_EXEC_FAILED)  # the program's failure (missing; as root: never run)
        self.assertEqual([line for line in self.lines if line.startswith("new msg")], [])  # not into the queue

    async def test_trigger_fifo_wakes_scheduler(self) -> None:
        self.start()
        await task.deferLater(reactor, 0.05, lambda: None)
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        fd = os.open(self.layout.trigger_path(), os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"\0")
        os.close(fd)
        await wait_for(lambda: f"end msg {mid}" in self.lines, timeout=5)
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])

    async def test_second_trigger_pull(self) -> None:
        self.start()
        for n in (1, 2):
            await task.deferLater(reactor, 0.05, lambda: None)
            queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
            fd = os.open(self.layout.trigger_path(), os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"\0")
            os.close(fd)
            # (message ids are inode numbers and may repeat: count completions, not ids)
            await wait_for(lambda: sum(l.startswith("end msg") for l in self.lines) == n, timeout=5)
        self.assertEqual(len(self.local.jobs), 2)

    async def test_queuesync_control_file(self) -> None:
        from pymta.queue.syncing import QueueSync

        write_control(self.root, "queuesync", "syncfs\n")
        _, sink = self.start()
        expected = "syncfs" if QueueSync.available() is None else "fsync"
        self.assertEqual(sink.queue.disk.sync.mode, expected)
        self.assertIs(sink.queue.disk.spares.sync, sink.queue.disk.sync)
        writer = sink.open_message("a@mail.example", ["bob@mail.example"], origin="by uid 0")
        writer.write(b"Subject: hi\n\nbody\n")
        receipt = await writer.finish()
        await wait_for(lambda: f"end msg {receipt.message_id}" in self.lines)

    def test_unknown_queuesync_refused(self) -> None:
        # it used to be a warning and fsync: a typo in the file went unnoticed
        write_control(self.root, "queuesync", "# how to sync\nsometimes\n")
        error = self.assertRaises(ControlError, self.start)
        self.assertEqual(str(error), f"{os.path.join(self.root, 'control', 'queuesync')}:2: "
                                     "unknown mode 'sometimes' (expected fsync or syncfs)")

    def test_crash_leftovers_cleaned_at_start(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        os.unlink(self.layout.todo(mid))  # a writer died before its commit: mess without todo
        os.utime(self.layout.mess(mid), (1_700_000_000, 1_700_000_000))
        self.start()
        self.assertFalse(os.path.exists(self.layout.mess(mid)))
        self.assertEqual(self.local.jobs, [])

    async def test_inject_socket(self) -> None:
        from pymta.queue.client import enqueue_socket
        from pymta.queue.framing import inject_socket_path

        self.start()
        path = inject_socket_path(self.root)
        await wait_for(lambda: os.path.exists(path))
        receipt = await threads.deferToThread(
            enqueue_socket, path, b"Subject: x\n\nbody\n", "a@mail.example", ["carol@other.example"]
        )
        await wait_for(lambda: f"end msg {receipt.message_id}" in self.lines)
        self.assertEqual(self.remote.recipients(), ["carol@other.example"])

    async def test_without_channels_everything_is_deferred(self) -> None:
        _, sink = self.start(channels=None)
        writer = sink.open_message("a@mail.example", ["bob@mail.example", "x@other.example"], origin="by uid 0")
        writer.write(b"\n")
        receipt = await writer.finish()
        mid = receipt.message_id
        await wait_for(lambda: sum("deferral" in l for l in self.lines) == 2)
        self.assertIn("delivery 1: deferral: no_local_delivery_channel_is_installed_(#4.3.0)/", self.lines)
        self.assertIn("delivery 2: deferral: no_remote_delivery_channel_is_installed_(#4.3.0)/", self.lines)
        for path in (self.layout.local(mid), self.layout.remote(mid), self.layout.mess(mid)):
            self.assertTrue(os.path.exists(path), path)

    async def test_ctl_commands_and_pid_file(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        service, _ = self.start()
        scheduler = service.getServiceNamed("pymta-send-scheduler")
        self.assertEqual(open(pid_file_path(self.root)).read().strip(), str(os.getpid()))
        mid = queue_message(self.layout, "a@mail.example", ["r@other.example"])
        scheduler.scan_todo()
        await wait_for(lambda: self.remote.jobs)

        out, err, code = await run_ctl(self.root, "stat")
        self.assertEqual(code, 0, err)
        self.assertIn(b"status: local 0/10 remote 0/20", out)
        self.assertIn(b"jobs_waiting: 1", out)

        out, err, code = await run_ctl(self.root, "queue")
        self.assertEqual(code, 0, err)
        self.assertRegex(out.decode(), rf"msg {mid} remote next try .* GMT \(in (39\d|400) s\)")

        out, err, code = await run_ctl(self.root, "doqueue")
        self.assertEqual(code, 0, err)
        await wait_for(lambda: len(self.remote.jobs) == 2)

        out, err, code = await run_ctl(self.root, "pause")
        self.assertEqual(code, 0, err)
        self.assertTrue(scheduler.paused)
        out, err, code = await run_ctl(self.root, "cont")
        self.assertEqual((code, scheduler.paused), (0, False))

        with open(os.path.join(self.root, "control", "concurrencyremote"), "w") as f:
            f.write("many\n")
        out, err, code = await run_ctl(self.root, "reload")
        self.assertEqual(code, 111)
        self.assertIn(b"concurrencyremote", err)
        with open(os.path.join(self.root, "control", "concurrencyremote"), "w") as f:
            f.write("250\n")
        out, err, code = await run_ctl(self.root, "reload")
        self.assertEqual(code, 0, err)
        self.assertEqual(scheduler.controls.current.concurrencyremote, 250)

        out, err, code = await run_ctl(self.root, "frobnicate")
        self.assertEqual(code, 100)

        await service.stopService()
        self.assertFalse(os.path.exists(pid_file_path(self.root)))
        out, err, code = await run_ctl(self.root, "stat")
        self.assertEqual(code, 111)
        self.assertIn(b"not running", err)

    async def test_ctl_flush_and_stop(self) -> None:
        """
        flush is doqueue; stop answers, then stops the service (here: the given stop, not the reactor)
        and ctl waits until the process in the pid file is gone (here: a stand-in child ended by stop).
        """
        self.remote.answer = lambda job, r: ("Z", "later\n")
        stopped: list[defer.Deferred] = []
        stand_in = subprocess.Popen(["sleep", "60"])
        self.addCleanup(stand_in.wait)
        self.addCleanup(stand_in.kill)

        def stop() -> None:
            stopped.append(service.stopService())
            stand_in.kill()
            stand_in.wait()

        service, _ = self.start(stop=stop)
        with open(pid_file_path(self.root), "w") as f:
            f.write(f"{stand_in.pid}\n")
        scheduler = service.getServiceNamed("pymta-send-scheduler")
        queue_message(self.layout, "a@mail.example", ["r@other.example"])
        scheduler.scan_todo()
        await wait_for(lambda: self.remote.jobs)

        out, err, code = await run_ctl(self.root, "flush")
        self.assertEqual((code, out), (0, b"every queued message is being retried now\n"), err)
        await wait_for(lambda: len(self.remote.jobs) == 2)

        out, err, code = await run_ctl(self.root, "stop")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.decode(), f"pymta-send is stopping\npymta-send (pid {stand_in.pid}) has stopped\n")
        self.assertEqual(len(stopped), 1)
        await stopped[0]
        self.assertIn("status: exiting", self.lines)

    async def test_signals(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        service, _ = self.start()
        scheduler = service.getServiceNamed("pymta-send-scheduler")
        queue_message(self.layout, "a@mail.example", ["r@other.example"])
        scheduler.scan_todo()
        await wait_for(lambda: self.remote.jobs)
        if signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None):
            raise unittest.SkipTest("signal handlers can only be installed in the main thread")
        os.kill(os.getpid(), signal.SIGALRM)
        await wait_for(lambda: len(self.remote.jobs) == 2)
        with open(os.path.join(self.root, "control", "concurrencyremote"), "w") as f:
            f.write("77\n")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: scheduler.controls.current.concurrencyremote == 77)
        await service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGALRM), signal.SIG_DFL)


class NoDeliveryChannelTests(unittest.SynchronousTestCase):
    def test_defers_every_recipient(self) -> None:
        from pymta.interfaces import DeliveryJob, DeliveryResult

        results = self.successResultOf(
            NoDeliveryChannel("remote").deliver(DeliveryJob(1, "/x", "a@b", ("c@d", "e@f")))
        )
        self.assertEqual(results, [DeliveryResult("Z", "no remote delivery channel is installed (#4.3.0)\n")] * 2)
