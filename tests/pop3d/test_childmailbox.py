"""The per-user mailbox child: real child processes (setuid parts run as root only)."""

from __future__ import annotations

import io
import os

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.pop3d import mailboxchild
from pymta.pop3d.childclient import ChildFailed, ChildMailbox, open_child_mailbox
from pymta.pop3d.mailbox import MessageUnavailable, NoMaildir
from pymta.pop3d.maildir import MaildirStore
from tests.pop3d.helpers import sample_maildir

TEST_UID = 4242
TEST_GID = 4242


def chown_tree(path: str, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


class ServeTests(SynchronousTestCase):
    """The child's request loop, in-process."""

    def test_requests(self) -> None:
        store = MaildirStore(sample_maildir(self.mktemp()))
        out = io.BytesIO()
        mailboxchild.serve(store, io.BytesIO(b"LOAD\nRETR 1 -\nRETR 0 0\nRETR 9 -\nCOMMIT 0,9\nBOGUS\n"), out)
        self.assertEqual(
            out.getvalue(),
            b"OK 3\n1000.A.host 23\n1001.B.host 36\n1002.C.host 24\n"
            b"OK\n37\nSubject: two\r\n\r\n..dot\r\nline2\r\nline3\r\n3\n.\r\n0\n"
            b"OK\n16\nSubject: one\r\n\r\n3\n.\r\n0\n"
            b"NOFILE\n"
            b"OK 1\n"
            b"ERR bad request\n",
        )
        self.assertEqual(len(os.listdir(os.path.join(store.maildir, "cur"))), 2)

    def test_no_maildir(self) -> None:
        out = io.BytesIO()
        mailboxchild.serve(MaildirStore(self.mktemp()), io.BytesIO(b"LOAD\n"), out)
        self.assertEqual(out.getvalue(), b"NOMAILDIR\n")

    def test_refuses_root(self) -> None:
        self.assertEqual(mailboxchild.main(["0", "0", "/tmp"]), mailboxchild.EXIT_PRIVILEGES)
        self.assertEqual(mailboxchild.main(["x"]), mailboxchild.EXIT_USAGE)


class PausingConsumer(StringTransport):
    """A client transport whose buffer is always full right after a write, drained a moment later."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and self.streaming:
            self.producer.pauseProducing()
            reactor.callLater(0.001, self._drained)

    def _drained(self) -> None:
        if self.producer is not None:
            self.producer.resumeProducing()


class _ChildTransport(StringTransport):
    """What ChildMailbox calls on its process transport, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[object] = []

    def closeStdin(self) -> None:
        self.calls.append("closeStdin")

    def closeChildFD(self, fd: int) -> None:
        self.calls.append(("closeChildFD", fd))

    def signalProcess(self, name: str) -> None:
        self.calls.append(("signal", name))


class LoadOrCloseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.child = ChildMailbox()
        self.transport = _ChildTransport()
        self.child.makeConnection(self.transport)

    def test_loaded(self) -> None:
        d = self.child.load_or_close()
        self.assertEqual(self.transport.value(), b"LOAD\n")
        self.child.childDataReceived(1, b"OK 1\n1000.A.host 23\n")
        self.assertIs(self.successResultOf(d), self.child)
        self.assertEqual(self.transport.calls, [])

    def test_failure_closes_and_waits_for_the_end(self) -> None:
        d = self.child.load_or_close()
        self.child.childDataReceived(1, b"NOMAILDIR\n")
        self.assertNoResult(d)
        self.assertEqual(self.transport.calls, ["closeStdin", ("closeChildFD", 1)])
        self.child.processEnded(Failure(ProcessTerminated(1)))
        self.failureResultOf(d, NoMaildir)
        self.assertEqual(self.successResultOf(self.child.ended), 1)


class ChildProcessTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.maildir = sample_maildir(os.path.abspath(self.mktemp()))
        if os.getuid() == 0:
            self.uid, self.gid = TEST_UID, TEST_GID
            chown_tree(os.path.dirname(self.maildir), self.uid, self.gid)
            os.chmod(os.path.dirname(self.maildir), 0o755)
            for sub in ("", "new", "cur", "tmp"):
                os.chmod(os.path.join(self.maildir, sub), 0o700)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()

    async def _open(self):  # type: ignore[no-untyped-def]
        mailbox = await open_child_mailbox(reactor, self.uid, self.gid, self.maildir)
        self.addCleanup(self._close, mailbox)
        return mailbox

    def _close(self, mailbox) -> defer.Deferred:  # type: ignore[no-untyped-def]
        mailbox.close()
        return mailbox.ended

    @defer.inlineCallbacks
    def test_load_retr_commit(self):  # type: ignore[no-untyped-def]
        mailbox = yield defer.ensureDeferred(self._open())
        self.assertEqual([(m.uid, m.size) for m in mailbox.messages], [("1000.A.host", 23), ("1001.B.host", 36), ("1002.C.host", 24)])
        transport = StringTransport()
        began = []
        yield mailbox.send_message(1, None, lambda: began.append(True), transport)
        self.assertEqual(began, [True])
        self.assertEqual(transport.value(), b"Subject: two\r\n\r\n..dot\r\nline2\r\nline3\r\n.\r\n")
        self.assertIsNone(transport.producer)
        os.unlink(os.path.join(self.maildir, "cur", "1000.A.host:2,"))
        with self.assertRaises(MessageUnavailable):
            yield mailbox.send_message(0, None, lambda: began.append(False), StringTransport())
        self.assertEqual(began, [True])
        gone = yield mailbox.commit([1])
        self.assertTrue(gone)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "cur")), ["1002.C.host:2,"])

    @defer.inlineCallbacks
    def test_large_message_streamed_through_pipe(self):  # type: ignore[no-untyped-def]
        big = b"".join(b"line %06d\n" % i for i in range(60000)) + b".\n"
        path = os.path.join(self.maildir, "cur", "2000.Z.host:2,")
        with open(path, "wb") as f:
            f.write(big)
        os.utime(path, (2**31, 2**31))
        if os.getuid() == 0:
            os.chown(path, self.uid, self.gid)
        mailbox = yield defer.ensureDeferred(self._open())
        transport = StringTransport()
        yield mailbox.send_message(3, None, lambda: None, transport)
        self.assertEqual(len(transport.value()), mailbox.messages[3].size + 1 + 3)
        self.assertTrue(transport.value().endswith(b"line 059999\r\n..\r\n.\r\n"))

    @defer.inlineCallbacks
    def test_no_maildir(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(NoMaildir):
            yield open_child_mailbox(reactor, self.uid, self.gid, os.path.abspath(self.mktemp()))

    @defer.inlineCallbacks
    def test_child_refuses_root(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(ChildFailed):
            yield open_child_mailbox(reactor, 0, 0, self.maildir)

    @defer.inlineCallbacks
    def test_child_runs_as_user(self):  # type: ignore[no-untyped-def]
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        mailbox = yield defer.ensureDeferred(self._open())
        pid = mailbox.transport.pid
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        uid_line = [line for line in status.splitlines() if line.startswith("Uid:")][0]
        self.assertEqual(uid_line.split()[1:], [str(TEST_UID)] * 4)
        groups = [line for line in status.splitlines() if line.startswith("Groups:")][0]
        self.assertEqual(groups.split()[1:], [str(TEST_GID)])

    @defer.inlineCallbacks
    def test_paused_at_end_of_transfer_does_not_stall_next(self):  # type: ignore[no-untyped-def]
        mailbox = yield defer.ensureDeferred(self._open())
        for _ in range(3):
            for index in range(3):
                consumer = PausingConsumer()
                d = mailbox.send_message(index, None, lambda: None, consumer)
                d.addTimeout(10, reactor)
                yield d
                self.assertTrue(consumer.value().endswith(b"\r\n.\r\n"))
