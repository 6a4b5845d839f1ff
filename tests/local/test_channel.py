"""
Tests for pymta.local.channel with a real spawner process.

As root (CI) the recipient is uid/gid 4242 with a home chowned to it, so
these tests show that delivery code runs as that user and never as root;
not as root they use the invoking uid.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.interfaces import DeliveryJob, DeliveryResult, QueueReceipt, QueueRefused
from pymta.local.channel import NOT_RUNNING, SPAWNER_DIED, LocalChannel
from pymta.qmailqueue.hook import DaemonSink, QmailQueueHook
from pymta.qmailqueue.program import QmailQueueProgram
from tests.local.helpers import MESSAGE, chown_tree, make_home, maildir_files, write_file
from tests.qmailqueue.test_spawned import FakeProcess
from tests.waiting import eventually

IS_ROOT = os.getuid() == 0
UID = 4242 if IS_ROOT else os.getuid()
GID = 4242 if IS_ROOT else os.getgid()
OTHER = 4243


class RecordingWriter:
    def __init__(self, sink: "RecordingSink", sender: str, recipients, origin: str, uid) -> None:
        self.sink = sink
        self.record = {"sender": sender, "recipients": list(recipients), "origin": origin, "uid": uid, "data": b""}
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.record["data"] += data

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # nothing is held back: never a backlog

    def finish(self):
        if self.sink.refuse is not None:
            return defer.fail(self.sink.refuse)
        self.sink.queued.append(self.record)
        return defer.succeed(QueueReceipt(message_id=99, qp=4711))

    def abort(self) -> None:
        self.aborted = True


class RecordingSink:
    def __init__(self) -> None:
        self.queued: list[dict] = []
        self.refuse: Exception | None = None

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):
        return RecordingWriter(self, sender, recipients, origin, uid)


class ChannelTestCase(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        os.chmod(os.path.dirname(self.root), 0o711)  # trial's mkdtemp is 0700: let users reach their homes
        for sub in ("control", "users", "queue/mess/0", "alias"):
            os.makedirs(os.path.join(self.root, sub))
        os.chmod(self.root, 0o755)
        self.home = make_home(os.path.join(self.root, "home", "joe"))
        os.chmod(os.path.join(self.root, "home"), 0o755)
        write_file(
            os.path.join(self.root, "users", "assign"),
            f"=joe:joe:{UID}:{GID}:{self.home}:::\n+joe-:joe:{UID}:{GID}:{self.home}:-::\n"
            f"=rooty:root:0:0:{self.home}:::\n.\n",
        )
        if IS_ROOT:
            chown_tree(self.home, UID, GID)
            chown_tree(os.path.join(self.root, "alias"), UID, GID)
        self.message = write_file(os.path.join(self.root, "queue", "mess", "0", "1"), MESSAGE, 0o600)
        self.sink = RecordingSink()
        self.channel = self.make_channel()

    def make_channel(self, **kwargs) -> LocalChannel:
        channel = LocalChannel(self.root, ControlReader(self.root), self.sink, reactor, **kwargs)
        self.addCleanup(channel.stop)
        return channel

    def dotqmail(self, name: str, text: str, mode: int = 0o600) -> None:
        path = write_file(os.path.join(self.home, name), text, mode)
        if IS_ROOT:
            os.chown(path, UID, GID)

    @defer.inlineCallbacks
    def deliver(self, recipient: str, sender: str = "alice@example.com", channel: LocalChannel | None = None):
        channel = channel or self.channel
        if channel.protocol is None:
            channel.start()
        yield channel.when_ready()
        [result] = yield channel.deliver(DeliveryJob(1, self.message, sender, (recipient,)))
        return result


class DeliveryAsUserTests(ChannelTestCase):
    @defer.inlineCallbacks
    def test_maildir_file_owned_by_user(self) -> None:
        result = yield self.deliver("joe@example.org")
        self.assertEqual((result.status, result.text), ("K", "did 1+0+0\n"))
        [data] = maildir_files(os.path.join(self.home, "Maildir"))
        self.assertEqual(data, b"Return-Path: <alice@example.com>\nDelivered-To: joe@example.org\n" + MESSAGE)
        [name] = os.listdir(os.path.join(self.home, "Maildir", "new"))
        st = os.stat(os.path.join(self.home, "Maildir", "new", name))
        self.assertEqual((st.st_uid, st.st_gid), (UID, GID))

    @defer.inlineCallbacks
    def test_program_runs_as_user_with_only_his_group(self) -> None:
        self.dotqmail(".qmail-id", "|id -u; id -g; id -G; ./missing-no-such 2>/dev/null || true\n")
        result = yield self.deliver("joe-id@example.org")
        self.assertEqual(result.status, "K")
        lines = result.text.splitlines()
        self.assertEqual(lines[:2], [str(UID), str(GID)])
        if IS_ROOT:
            self.assertEqual(lines[2], str(GID))
        self.assertEqual(lines[-1], "did 0+0+1")

    @defer.inlineCallbacks
    def test_delivery_child_holds_no_root_credential(self) -> None:
        """The Python process running qmail-local's logic ($PPID of the program) has only the user's ids."""
        self.dotqmail(".qmail-creds", "|grep -E '^(Uid|Gid|Groups):' /proc/$PPID/status\n")
        result = yield self.deliver("joe-creds@example.org")
        self.assertEqual(result.status, "K")
        fields = {line.split(":")[0]: line.split(":")[1].split() for line in result.text.splitlines()[:-1]}
        self.assertEqual(fields["Uid"], [str(UID)] * 4)  # real, effective, saved, filesystem
        self.assertEqual(fields["Gid"], [str(GID)] * 4)
        if IS_ROOT:
            self.assertEqual(fields["Groups"], [str(GID)])

    @defer.inlineCallbacks
    def test_mbox_created_by_user(self) -> None:
        self.dotqmail(".qmail-box", "./mbox\n")
        result = yield self.deliver("joe-box@example.org")
        self.assertEqual(result.status, "K")
        st = os.stat(os.path.join(self.home, "mbox"))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (UID, 0o600))

    @defer.inlineCallbacks
    def test_root_refused(self) -> None:
        result = yield self.deliver("rooty@example.org")
        self.assertEqual(result.status, "Z")
        self.assertIn("Not allowed to perform deliveries as root.", result.text)

    @defer.inlineCallbacks
    def test_many_at_once(self) -> None:
        self.channel.start()
        yield self.channel.when_ready()
        jobs = [DeliveryJob(1, self.message, f"s{i}@x", ("joe@example.org",)) for i in range(25)]
        results = yield defer.gatherResults([self.channel.deliver(job) for job in jobs])
        self.assertEqual([r[0].status for r in results], ["K"] * 25)
        self.assertEqual(len(maildir_files(os.path.join(self.home, "Maildir"))), 25)


class RequestTests(ChannelTestCase):
    @defer.inlineCallbacks
    def test_address_without_host(self) -> None:
        result = yield self.deliver("joe")
        self.assertEqual((result.status, result.text), ("D", "Sorry, address must include host name. (#5.1.3)\n"))

    @defer.inlineCallbacks
    def test_empty_local_part_is_trash(self) -> None:
        result = yield self.deliver("@example.org")
        self.assertEqual((result.status, result.text), ("K", "did 0+0+0\n"))

    @defer.inlineCallbacks
    def test_missing_message(self) -> None:
        os.unlink(self.message)
        result = yield self.deliver("joe@example.org")
        self.assertEqual((result.status, result.text), ("Z", "Unable to open message: No such file or directory. (#4.3.0)\n"))

    @defer.inlineCallbacks
    def test_unknown_goes_to_alias(self) -> None:
        alias = os.path.join(self.root, "alias")
        path = write_file(os.path.join(alias, ".qmail-postmaster"), "|echo alias got $EXT\n", 0o600)
        if IS_ROOT:
            os.chown(path, UID, GID)
        result = yield self.deliver("postmaster@example.org")
        self.assertEqual((result.status, result.text), ("K", "alias got postmaster\ndid 0+0+1\n"))

    @defer.inlineCallbacks
    def test_output_capped(self) -> None:
        self.dotqmail(".qmail-loud", "|yes | head -c 3500; exit 100\n")
        result = yield self.deliver("joe-loud@example.org")
        self.assertEqual(result.status, "D")
        self.assertTrue(result.text.endswith("\nError report too long, sorry.\n"))
        self.assertLessEqual(len(result.text.encode()), 3000)

    def test_not_started(self) -> None:
        d = self.channel.deliver(DeliveryJob(1, self.message, "", ("joe@example.org",)))
        self.assertEqual(self.successResultOf(d)[0].text, NOT_RUNNING)


class ForwardTests(ChannelTestCase):
    @defer.inlineCallbacks
    def test_forward_through_sink(self) -> None:
        self.dotqmail(".qmail-fwd", "&x@example.net\ny;rm -rf /@example.net\n")
        self.dotqmail(".qmail-fwd-owner", "joe\n")
        result = yield self.deliver("joe-fwd@example.org")
        self.assertEqual((result.status, result.text), ("K", "did 0+2+0\nqp 4711\n"))
        [queued] = self.sink.queued
        self.assertEqual(queued["recipients"], ["x@example.net", "y;rm -rf /@example.net"])
        self.assertEqual(queued["sender"], "joe-fwd-owner@example.org")
        self.assertEqual(queued["origin"], f"by uid {UID}")
        self.assertEqual(queued["uid"], UID)
        self.assertEqual(queued["data"], b"Delivered-To: joe-fwd@example.org\n" + MESSAGE)

    @defer.inlineCallbacks
    def test_forward_refused(self) -> None:
        self.dotqmail(".qmail-fwd", "&x@example.net\n")
        self.sink.refuse = QueueRefused("qq write error or disk full (#4.3.0)")
        result = yield self.deliver("joe-fwd@example.org")
        self.assertEqual((result.status, result.text), ("Z", "Unable to forward message: qq write error or disk full (#4.3.0).\n"))
        self.sink.refuse = QueueRefused("qq permanent problem (#5.3.0)", permanent=True)
        result = yield self.deliver("joe-fwd@example.org")
        self.assertEqual(result.status, "D")

    @defer.inlineCallbacks
    def test_forwarded_copy_loops_back(self) -> None:
        """The queued copy carries Delivered-To, so delivering it to the same address bounces."""
        self.dotqmail(".qmail-fwd", "&joe-fwd@example.org\n")
        result = yield self.deliver("joe-fwd@example.org")
        self.assertEqual(result.status, "K")
        write_file(self.message, self.sink.queued[0]["data"], 0o600)
        result = yield self.deliver("joe-fwd@example.org")
        self.assertEqual(
            (result.status, result.text),
            ("D", "This message is looping: it already has my Delivered-To line. (#5.4.6)\n"),
        )


class ForwardThroughQmailQueueTests(ChannelTestCase):
    """
    A forward passes the QMAILQUEUE program of pymta-send's environment (as
    qmail-local's through qmail-queue), with the sink pymta-send gives the
    channel (a L{DaemonSink}); the program's refusal is qmail-local's
    C{Unable to forward message}: permanent -> D, temporary -> Z.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()  # the program's time bound
        self.processes: list[FakeProcess] = []
        self.programs: list[QmailQueueProgram] = []
        super().setUp()
        hook = QmailQueueHook(self.root, self.clock, lambda: 7, environ={"QMAILQUEUE": "/usr/local/bin/scan"},
                              spawn=self.spawn)
        self.sink = DaemonSink(hook, RecordingSink())  # type: ignore[assignment]  # the channel takes any MessageSink
        self.channel = self.make_channel()
        self.dotqmail(".qmail-fwd", "&x@example.net\n")

    def spawn(self, protocol: ProcessProtocol, program: QmailQueueProgram) -> object:
        self.programs.append(program)
        self.processes.append(FakeProcess(protocol, pid=5150))
        return self.processes[-1], self.processes[-1].stdin

    @defer.inlineCallbacks
    def forward(self, end):
        """Deliver to joe-fwd; C{end(process)} ends the program once it has the message and envelope."""
        before = len(self.processes)
        d = self.deliver("joe-fwd@example.org")
        yield eventually(lambda: len(self.processes) > before and 1 in self.processes[-1].closed,
                         what="the program's envelope")
        process = self.processes[-1]
        end(process)
        result = yield d
        return result, process

    @defer.inlineCallbacks
    def test_the_program_queues_the_forward(self) -> None:
        result, process = yield self.forward(lambda process: process.end(0))
        self.assertEqual((result.status, result.text), ("K", "did 0+1+0\nqp 5150\n"))
        self.assertEqual(self.programs[0].path, "/usr/local/bin/scan")
        self.assertEqual(process.written[0], b"Delivered-To: joe-fwd@example.org\n" + MESSAGE)
        self.assertEqual(process.written[1], b"Falice@example.com\0Tx@example.net\0\0")
        self.assertEqual(self.sink.default.queued, [])  # type: ignore[attr-defined]  # not the queue's

    @defer.inlineCallbacks
    def test_a_permanent_refusal_bounces(self) -> None:
        result, _ = yield self.forward(lambda process: process.end(31))
        self.assertEqual((result.status, result.text),
                         ("D", "Unable to forward message: mail server permanently rejected message (#5.3.0).\n"))

    @defer.inlineCallbacks
    def test_a_temporary_refusal_is_retried(self) -> None:
        result, _ = yield self.forward(lambda process: process.end(71))
        self.assertEqual((result.status, result.text),
                         ("Z", "Unable to forward message: mail server temporarily rejected message (#4.3.0).\n"))
        result, _ = yield self.forward(lambda process: process.end(82, reply=b"Dvirus found (#5.7.1)"))
        self.assertEqual((result.status, result.text), ("D", "Unable to forward message: virus found (#5.7.1).\n"))

    @defer.inlineCallbacks
    def test_timeoutqmailqueue_bounds_the_program(self) -> None:
        result, process = yield self.forward(lambda process: self.clock.advance(7))
        self.assertEqual((result.status, result.text), ("Z", "Unable to forward message: qq timeout (#4.3.0).\n"))
        self.assertEqual(process.signals, ["KILL"])


class LifecycleTests(ChannelTestCase):
    @defer.inlineCallbacks
    def test_child_killed(self) -> None:
        self.dotqmail(".qmail-kill", "|kill -9 $PPID; sleep 5\n")
        result = yield self.deliver("joe-kill@example.org")
        self.assertEqual((result.status, result.text), ("Z", "Local delivery child crashed (signal 9). (#4.3.0)\n"))

    @defer.inlineCallbacks
    def test_spawner_death_defers_and_restarts(self) -> None:
        channel = self.make_channel(restart_delay=0.05)
        # the delivery runs until the test lets it go, after the spawner is dead
        started, go = os.path.join(self.home, "started"), os.path.join(self.home, "go")
        self.dotqmail(".qmail-slow", "|touch started; while [ ! -e go ]; do sleep 0.02; done\n")
        self.addCleanup(write_file, go, "")
        channel.start()
        hello = yield channel.when_ready()
        d = channel.deliver(DeliveryJob(1, self.message, "", ("joe-slow@example.org",)))
        yield eventually(lambda: os.path.exists(started), what="the delivery to start")
        os.kill(hello.pid, signal.SIGKILL)
        # the deferral comes while the orphaned delivery still runs (it holds the spawner's stderr)
        [result] = yield d
        self.assertFalse(os.path.exists(go))
        self.assertEqual((result.status, result.text), ("Z", SPAWNER_DIED))
        write_file(go, "")
        hello2 = yield channel.when_ready()
        self.assertNotEqual(hello2.pid, hello.pid)
        result = yield self.deliver("joe@example.org", channel=channel)
        self.assertEqual(result.status, "K")

    test_spawner_death_defers_and_restarts.timeout = 20  # type: ignore[attr-defined]  # trial reads it

    @defer.inlineCallbacks
    def test_stop_waits_for_running_delivery(self) -> None:
        self.dotqmail(".qmail-slow", "|sleep 0.5; echo done\n")
        self.channel.start()
        yield self.channel.when_ready()
        d = self.channel.deliver(DeliveryJob(1, self.message, "", ("joe-slow@example.org",)))
        yield self.channel.stop()
        [result] = self.successResultOf(d)
        self.assertEqual((result.status, result.text), ("K", "done\ndid 0+0+1\n"))
        [late] = yield self.channel.deliver(DeliveryJob(1, self.message, "", ("joe@example.org",)))
        self.assertEqual(late.text, NOT_RUNNING)


class NotRootTests(ChannelTestCase):
    """The spawner started without root defers deliveries for other uids and runs its own."""

    def setUp(self) -> None:
        if not IS_ROOT:
            raise unittest.SkipTest("needs root to start a spawner as another uid")
        super().setUp()
        self.other_home = make_home(os.path.join(self.root, "home", "other"))
        chown_tree(self.other_home, OTHER, OTHER)
        write_file(
            os.path.join(self.root, "users", "assign"),
            f"=joe:joe:{UID}:{GID}:{self.home}:::\n=other:other:{OTHER}:{OTHER}:{self.other_home}:::\n.\n",
        )
        os.chmod(self.message, 0o644)
        for d in ("queue", "queue/mess", "queue/mess/0", "users", "control"):
            os.chmod(os.path.join(self.root, d), 0o755)
        wrapper = os.path.join(self.root, "python-as-other")
        write_file(
            wrapper,
            f"#!/bin/sh\nexec /usr/bin/setpriv --reuid {OTHER} --regid {OTHER} --clear-groups {sys.executable} \"$@\"\n",
            0o755,
        )
        self.unprivileged = self.make_channel(python=wrapper)

    @defer.inlineCallbacks
    def test_other_uid_deferred_own_uid_delivered(self) -> None:
        self.unprivileged.start()
        hello = yield self.unprivileged.when_ready()
        self.assertEqual(hello.uid, OTHER)
        result = yield self.deliver("joe@example.org", channel=self.unprivileged)
        self.assertEqual((result.status, result.text), ("Z", f"Not running as root, cannot deliver as uid {UID}. (#4.3.0)\n"))
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])
        result = yield self.deliver("other@example.org", channel=self.unprivileged)
        self.assertEqual(result.status, "K")
        [name] = os.listdir(os.path.join(self.other_home, "Maildir", "new"))
        self.assertEqual(os.stat(os.path.join(self.other_home, "Maildir", "new", name)).st_uid, OTHER)


class OneRecipientTests(unittest.SynchronousTestCase):
    """deliver() of one recipient (no DeferredList) gives what the many-recipient path gives."""

    def make_channel(self, outcome) -> LocalChannel:
        root = self.mktemp()
        os.makedirs(root)
        channel = LocalChannel(root, ControlReader(root), RecordingSink(), reactor)
        channel._deliver_one = lambda job, recipient: outcome(recipient)  # type: ignore[method-assign]  # the spawner's part stubbed
        return channel

    def test_result_in_a_list(self) -> None:
        channel = self.make_channel(lambda rcpt: defer.succeed(DeliveryResult("K", f"did 1+0+0 {rcpt}\n")))
        one = self.successResultOf(channel.deliver(DeliveryJob(1, "/m", "", ("a@x",))))
        two = self.successResultOf(channel.deliver(DeliveryJob(1, "/m", "", ("a@x", "b@x"))))
        self.assertEqual(one, [DeliveryResult("K", "did 1+0+0 a@x\n")])
        self.assertEqual(two, [DeliveryResult("K", "did 1+0+0 a@x\n"), DeliveryResult("K", "did 1+0+0 b@x\n")])

    def test_internal_error_as_with_many(self) -> None:
        """A failure inside the channel defers the recipient with the text the many-recipient path gives."""
        error = RuntimeError("boom")
        channel = self.make_channel(lambda rcpt: defer.fail(error) if rcpt == "a@x" else defer.Deferred())
        [one] = self.successResultOf(channel.deliver(DeliveryJob(1, "/m", "", ("a@x",))))
        many = self.successResultOf(channel.deliver(DeliveryJob(1, "/m", "", ("a@x", "b@x"))))
        self.assertEqual(one.status, "Z")
        self.assertTrue(one.text.startswith("Internal error in local channel: FirstError[#0, "), one.text)
        self.assertIn("boom", one.text)
        self.assertEqual(many, [one, one])
