"""
The root mailbox spawner: requests, fd passing, children as the user, and
its own login check (pop3d is not trusted to name a uid or a path).
"""

from __future__ import annotations

import hashlib
import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.passwdfile import hash_password
from pymta.pop3d.auth import Account
from pymta.pop3d.childclient import ChildFailed, MailboxDenied
from pymta.pop3d.mailbox import NoMaildir
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.protocol import LoginRefused
from pymta.pop3d.rootauth import PasswdFileSource
from pymta.pop3d.spawner import handle_request
from pymta.pop3d.spawnerclient import MailboxSpawner
from pymta.pop3d.spawnrequest import LoginRequest
from tests.pop3d.helpers import sample_maildir
from tests.pop3d.test_checkpassword import write_checkpassword
from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree


def apop(stamp: bytes, secret: bytes) -> bytes:
    return hashlib.md5(stamp + secret).hexdigest().encode()


class HandleRequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        self.source = PasswdFileSource(os.path.abspath(self.mktemp()))

    def test_bad_requests(self) -> None:
        """Malformed, old-style (uid/gid/path) and out-of-bounds requests get ERR; nothing is forked."""
        user, path = b"alice".hex().encode(), b"/home/alice/Maildir/".hex().encode()
        for line in [
            b"OPEN 1 x 1 00",
            b"OPEN 2 4242 4242 " + path,
            b"OPEN 3 0 0 " + path,
            b"HELLO",
            b"OPEN 4 PASS zz 00",
            b"OPEN 5 PASS " + user,
            b"OPEN 6 PASS " + user + b" ",
            b"OPEN 7 APOP " + user + b" " + b"0" * 64 + b" " + b"<a@b>".hex().encode(),
            b"OPEN 8 PASS " + b"ab" * 300 + b" 00",
            b"OPEN 9 PASS " + user + b" " + b"61" * 600,
            b"OPEN 123456789012345678901 PASS " + user + b" 61",
        ]:
            handle_request(self.theirs, line, self.source)
        self.assertEqual(
            self.ours.recv(4096).splitlines(),
            [
                b"ERR 1 bad request",
                b"ERR 2 bad request",
                b"ERR 3 bad request",
                b"ERR - bad request",
                b"ERR 4 bad hex field",
                b"ERR 5 bad request",
                b"ERR 6 bad hex field",
                b"ERR 7 bad digest",
                b"ERR 8 bad user name",
                b"ERR 9 bad password",
                b"ERR - bad request",
            ],
        )


class SpawnerTests(TestCase):
    """A real spawner process checking logins against its own users/passwd."""

    timeout = 60

    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        self.home = os.path.join(base, "alice")
        self.maildir = sample_maildir(os.path.join(self.home, "Maildir"))
        self.elsewhere = sample_maildir(os.path.join(base, "elsewhere", "Maildir"))
        self.linked_home = os.path.join(base, "linked")
        os.makedirs(self.linked_home)
        os.symlink(self.elsewhere, os.path.join(self.linked_home, "Maildir"))
        for directory in (base, os.path.dirname(base)):
            os.chmod(directory, 0o755)
        if os.getuid() == 0:
            self.uid, self.gid = TEST_UID, TEST_GID
            for tree in (self.home, os.path.dirname(self.elsewhere), self.linked_home):
                chown_tree(tree, self.uid, self.gid)
                os.chmod(tree, 0o755)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        u, g = self.uid, self.gid
        lines = [
            f"alice:{{PLAIN}}secret:{u}:{g}::{self.home}::",
            f"hashed:{hash_password('hashpw')}:{u}:{g}::{self.home}::",
            f"rooted:{{PLAIN}}pw:0:{g}::{self.home}::",
            f"rootgroup:{{PLAIN}}pw:{u}:0::{self.home}::",
            f"notowner:{{PLAIN}}pw:{u + 1}:{g}::{self.home}::",
            f"linked:{{PLAIN}}pw:{u}:{g}::{self.linked_home}::",
            f"virtual:{{PLAIN}}pw::::{self.home}::",
        ]
        self.passwd = os.path.join(base, "passwd")
        with open(self.passwd, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.spawner = self.start_spawner(["--passwd", self.passwd])
        self.children: list = []

    def start_spawner(self, source_args: list[str]) -> MailboxSpawner:
        spawner = MailboxSpawner(reactor, source_args)
        spawner.start()
        self.addCleanup(self.stop, spawner)
        return spawner

    async def stop(self, spawner: MailboxSpawner) -> None:
        for child in self.children:
            child.close()
        for child in self.children:
            await child.ended
        self.children = []
        await spawner.stop()

    def open(self, user: bytes, password: bytes, spawner: MailboxSpawner | None = None) -> defer.Deferred:
        return (spawner or self.spawner).open(LoginRequest("PASS", user, password), self.children.append)

    @defer.inlineCallbacks
    def test_open_retr_commit(self):  # type: ignore[no-untyped-def]
        mailbox = yield self.open(b"alice", b"secret")
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
        mailboxes = yield defer.gatherResults([self.open(b"alice", b"secret") for _ in range(5)])
        self.assertEqual([len(m.messages) for m in mailboxes], [3] * 5)

    @defer.inlineCallbacks
    def test_hashed_password(self):  # type: ignore[no-untyped-def]
        mailbox = yield self.open(b"hashed", b"hashpw")
        self.assertEqual(len(mailbox.messages), 3)
        with self.assertRaises(MailboxDenied):
            yield self.open(b"hashed", b"secret")

    @defer.inlineCallbacks
    def test_apop_for_plain_entries(self):  # type: ignore[no-untyped-def]
        stamp = b"<12.34@host.example>"
        mailbox = yield self.spawner.open(LoginRequest("APOP", b"alice", apop(stamp, b"secret"), stamp), self.children.append)
        self.assertEqual(len(mailbox.messages), 3)
        with self.assertRaises(MailboxDenied):  # another banner's digest
            yield self.spawner.open(LoginRequest("APOP", b"alice", apop(b"<1.1@x>", b"secret"), stamp), self.children.append)
        with self.assertRaises(MailboxDenied):  # no APOP for hashed entries
            yield self.spawner.open(LoginRequest("APOP", b"hashed", apop(stamp, b"hashpw"), stamp), self.children.append)

    @defer.inlineCallbacks
    def test_forged_logins_refused(self):  # type: ignore[no-untyped-def]
        """A compromised pop3d cannot open a mailbox without the account's password."""
        for user, password in [(b"alice", b"wrong"), (b"nosuchuser", b"secret"), (b"root", b"x")]:
            with self.assertRaises(MailboxDenied):
                yield self.open(user, password)
        with self.assertRaises(MailboxDenied):  # a missing password is never sent
            yield self.open(b"alice", b"")
        # the old request naming uid, gid and path directly, written raw
        d: defer.Deferred = defer.Deferred()
        self.spawner._pending[b"99"] = d
        path = os.fsencode(self.maildir).hex().encode()
        self.spawner._control.transport.write(b"OPEN 99 %d %d %s\n" % (self.uid, self.gid, path))
        with self.assertRaises(ChildFailed) as caught:
            yield d
        self.assertIn("bad request", str(caught.exception))
        # a password without the APOP timestamp it belongs to, raw as well
        d = defer.Deferred()
        self.spawner._pending[b"98"] = d
        self.spawner._control.transport.write(b"OPEN 98 PASS %s\n" % b"alice".hex().encode())
        with self.assertRaises(ChildFailed):
            yield d
        self.assertTrue(self.spawner.running)
        mailbox = yield self.open(b"alice", b"secret")  # still serving after all that
        self.assertEqual(len(mailbox.messages), 3)

    @defer.inlineCallbacks
    def test_overlong_request_refused(self):  # type: ignore[no-untyped-def]
        self.spawner._control.transport.write(b"OPEN " + b"1" * 70000 + b"\n")
        mailbox = yield self.open(b"alice", b"secret")
        self.assertEqual(len(mailbox.messages), 3)

    @defer.inlineCallbacks
    def test_root_and_foreign_accounts_refused(self):  # type: ignore[no-untyped-def]
        for user in (b"rooted", b"rootgroup", b"notowner", b"virtual"):
            with self.assertRaises(MailboxDenied) as caught:
                yield self.open(user, b"pw")
            self.assertNotIn("authorization failed", str(caught.exception))

    @defer.inlineCallbacks
    def test_symlinked_maildir_outside_home_refused(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(MailboxDenied) as caught:
            yield self.open(b"linked", b"pw")
        self.assertIn("Maildir leaves the home", str(caught.exception))

    @defer.inlineCallbacks
    def test_no_maildir(self):  # type: ignore[no-untyped-def]
        os.rename(self.maildir, self.maildir.rstrip("/") + ".gone")
        with self.assertRaises(NoMaildir):
            yield self.open(b"alice", b"secret")

    @defer.inlineCallbacks
    def test_checkpassword_source(self):  # type: ignore[no-untyped-def]
        program = write_checkpassword(
            os.path.abspath(self.mktemp()), self.home, self.uid if os.getuid() == 0 else None
        )
        spawner = self.start_spawner(["--checkpassword", program])
        mailbox = yield self.open(b"alice", b"secret", spawner)
        self.assertEqual(len(mailbox.messages), 3)
        stamp = b"<5.6@x>"
        mailbox = yield spawner.open(LoginRequest("APOP", b"alice", apop(stamp, b"secret"), stamp), self.children.append)
        self.assertEqual(len(mailbox.messages), 3)
        with self.assertRaises(MailboxDenied):
            yield self.open(b"alice", b"wrong", spawner)
        with self.assertRaises(MailboxDenied):
            yield self.open(b"busy", b"secret", spawner)

    @defer.inlineCallbacks
    def test_opener_sends_the_login(self):  # type: ignore[no-untyped-def]
        opener = MailboxOpener(reactor, euid=lambda: self.uid + 7, spawner=self.spawner)
        account = Account("alice", self.uid, self.gid, "/anything", LoginRequest("PASS", b"alice", b"secret"))
        mailbox = yield opener(account)
        self.children.append(mailbox)
        self.assertEqual(len(mailbox.messages), 3)
        with self.assertRaises(LoginRefused):  # no login to show
            yield opener(Account("alice", self.uid, self.gid, self.home))
        with self.assertRaises(LoginRefused):
            yield opener(Account("alice", self.uid, self.gid, self.home, LoginRequest("PASS", b"alice", b"bad")))

    @defer.inlineCallbacks
    def test_stopped_spawner(self):  # type: ignore[no-untyped-def]
        yield self.spawner.stop()
        self.assertFalse(self.spawner.running)
        with self.assertRaises(ChildFailed):
            yield self.open(b"alice", b"secret")
