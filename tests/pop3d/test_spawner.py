"""The root mailbox spawner: requests, fd passing, children as the user."""

from __future__ import annotations

import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.pop3d.childclient import ChildFailed
from pymta.pop3d.mailbox import NoMaildir
from pymta.pop3d.spawner import handle_request
from pymta.pop3d.spawnerclient import MailboxSpawner
from tests.pop3d.helpers import sample_maildir
from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree


class HandleRequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)

    def test_bad_requests(self) -> None:
        handle_request(self.theirs, b"OPEN 1 x 1 00")
        handle_request(self.theirs, b"OPEN 2 0 0 " + b"/tmp".hex().encode())
        handle_request(self.theirs, b"HELLO")
        handle_request(self.theirs, b"OPEN 3 5 5 zz")
        self.assertEqual(
            self.ours.recv(1000),
            b"ERR 1 bad request\nERR 2 refusing uid 0\nERR - bad request\nERR 3 non-hexadecimal number found in fromhex() arg at position 0\n",
        )


class SpawnerTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.maildir = sample_maildir(os.path.abspath(self.mktemp()))
        if os.getuid() == 0:
            self.uid, self.gid = TEST_UID, TEST_GID
            os.chmod(os.path.dirname(self.maildir), 0o755)
            chown_tree(self.maildir, self.uid, self.gid)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.spawner = MailboxSpawner(reactor)
        self.spawner.start()
        self.children: list = []
        self.addCleanup(self.stop)

    async def stop(self) -> None:
        for child in self.children:
            child.close()
        for child in self.children:
            await child.ended
        await self.spawner.stop()

    @defer.inlineCallbacks
    def test_open_retr_commit(self):  # type: ignore[no-untyped-def]
        mailbox = yield self.spawner.open(self.uid, self.gid, self.maildir, self.children.append)
        self.assertEqual([m.size for m in mailbox.messages], [23, 36, 24])
        transport = StringTransport()
        yield mailbox.send_message(2, 0, lambda: None, transport)
        self.assertEqual(transport.value(), b"Subject: three\r\n\r\n.\r\n")
        self.assertTrue((yield mailbox.commit([0])))
        self.assertEqual(sorted(os.listdir(os.path.join(self.maildir, "cur"))), ["1001.B.host:2,", "1002.C.host:2,"])
        if os.getuid() == 0:
            self.assertEqual(os.stat(os.path.join(self.maildir, "cur", "1001.B.host:2,")).st_uid, TEST_UID)

    @defer.inlineCallbacks
    def test_many_sessions(self):  # type: ignore[no-untyped-def]
        mailboxes = yield defer.gatherResults(
            [self.spawner.open(self.uid, self.gid, self.maildir, self.children.append) for _ in range(5)]
        )
        self.assertEqual([len(m.messages) for m in mailboxes], [3] * 5)

    @defer.inlineCallbacks
    def test_refusals(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(ChildFailed):
            yield self.spawner.open(0, 0, self.maildir)
        with self.assertRaises(NoMaildir):
            yield self.spawner.open(self.uid, self.gid, os.path.abspath(self.mktemp()), self.children.append)

    @defer.inlineCallbacks
    def test_stopped_spawner(self):  # type: ignore[no-untyped-def]
        yield self.spawner.stop()
        self.assertFalse(self.spawner.running)
        with self.assertRaises(ChildFailed):
            yield self.spawner.open(self.uid, self.gid, self.maildir)
