"""pymta-pop3d over real sockets with poplib: plain, STLS, implicit TLS, APOP, checkpassword, system users."""

from __future__ import annotations

import os
import poplib
import ssl
import time

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.certs import self_signed_pem
from pymta.control import ControlError, ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.auth import Account
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.protocol import LoginRefused
from pymta.pop3d.service import build_pop3_service
from tests.pop3d.helpers import put_message, sample_maildir
from tests.pop3d.test_checkpassword import write_checkpassword
from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree

_PEM_CACHE: list[bytes] = []


def server_pem() -> bytes:
    if not _PEM_CACHE:
        _PEM_CACHE.append(self_signed_pem("localhost"))
    return _PEM_CACHE[0]


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_user_owned(root: str, home: str, maildir: str) -> None:
    """Give C{home} to the test uid (private, as a real home), the path to it traversable."""
    os.chmod(os.path.dirname(root), 0o755)
    chown_tree(home, TEST_UID, TEST_GID)
    for sub in ("", "new", "cur", "tmp"):
        os.chmod(os.path.join(maildir, sub), 0o700)
    os.chmod(home, 0o700)


class ServiceTestBase(TestCase):
    timeout = 60
    allow_plaintext = True
    listen = ["tcp:0:interface=127.0.0.1"]
    checkpassword: list[str] | None = None
    production_opener = False

    def setUp(self) -> defer.Deferred:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "control"))
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("pop.test\n")
        with open(os.path.join(self.root, "control", "servercert.pem"), "wb") as f:
            f.write(server_pem())
        self.home = os.path.join(self.root, "home", "alice")
        self.maildir = sample_maildir(os.path.join(self.home, "Maildir"))
        self.passwd = os.path.join(self.root, "users", "passwd")
        uid = os.getuid() or 4242
        set_password(self.passwd, "alice", "secret", uid, uid, self.home, scheme="PLAIN")
        set_password(self.passwd, "bob", "builder", uid, uid, self.home, scheme="BLF-CRYPT")
        self.clients: list[poplib.POP3] = []
        self.prepare()
        # Running as root, act as the mail uid that owns the Maildirs (virtual
        # users in-process); the system-user tests use the real opener.
        if self.production_opener:
            opener = None  # the service's own: root spawner when root
        else:
            opener = MailboxOpener(reactor, euid=lambda: os.getuid() or 4242)
        self.svc = build_pop3_service(
            self.root, ControlReader(self.root), self.listen, reactor=reactor,
            allow_plaintext=self.allow_plaintext, checkpassword=self.checkpassword, failure_delay=0.05,
            open_mailbox=opener,
        )
        self.svc.privilegedStartService()
        self.svc.startService()
        self.addCleanup(self.wait_disconnected)
        self.addCleanup(self.svc.stopService)
        self.ports = [child._waitingForPort.result.getHost().port for child in self.svc if hasattr(child, "_waitingForPort")]
        return defer.succeed(None)

    def prepare(self) -> None:
        """Hook for subclasses, run before the service is built."""

    def client(self, implicit_tls: bool = False) -> poplib.POP3:
        if implicit_tls:
            pop: poplib.POP3 = poplib.POP3_SSL("127.0.0.1", self.ports[0], context=client_tls(), timeout=20)
        else:
            pop = poplib.POP3("127.0.0.1", self.ports[0], timeout=20)
        self.clients.append(pop)
        return pop

    def in_thread(self, f) -> defer.Deferred:  # type: ignore[no-untyped-def]
        def run():  # type: ignore[no-untyped-def]
            try:
                return f()
            finally:
                for pop in self.clients:
                    pop.close()

        return threads.deferToThread(run)

    async def wait_disconnected(self) -> None:
        children = getattr(self.svc.settings.open_mailbox, "children", set())
        for _ in range(250):
            if not any(factory.connections for factory in self.svc.factories) and not children:
                return
            await task.deferLater(reactor, 0.02, lambda: None)
        for factory in self.svc.factories:
            for proto in list(factory.connections):
                proto.transport.abortConnection()

    def cur_names(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.maildir, "cur")))


class PlainServiceTests(ServiceTestBase):
    @defer.inlineCallbacks
    def test_full_session(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client()
            welcome = pop.getwelcome()
            pop.user("alice")
            pop.pass_("secret")
            stat = pop.stat()
            listing = pop.list()[1]
            uidl = pop.uidl()[1]
            message = pop.retr(2)[1]
            top = pop.top(1, 0)[1]
            pop.dele(1)
            pop.dele(3)
            pop.quit()
            return welcome, stat, listing, uidl, message, top

        welcome, stat, listing, uidl, message, top = yield self.in_thread(session)
        self.assertRegex(welcome, rb"^\+OK <\d+\.\d+\.\d+@pop\.test>$")
        self.assertEqual(stat, (3, 83))
        self.assertEqual(listing, [b"1 23", b"2 36", b"3 24"])
        self.assertEqual(uidl, [b"1 1000.A.host", b"2 1001.B.host", b"3 1002.C.host"])
        self.assertEqual(message, [b"Subject: two", b"", b".dot", b"line2", b"line3"])
        self.assertEqual(top, [b"Subject: one", b""])
        self.assertEqual(self.cur_names(), ["1001.B.host:2,"])

    @defer.inlineCallbacks
    def test_bcrypt_user_and_wrong_password(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client()
            pop.user("bob")
            try:
                pop.pass_("wrong")
            except poplib.error_proto as e:
                failed = e.args[0]
            pop.user("bob")
            pop.pass_("builder")
            stat = pop.stat()
            pop.close()  # no QUIT: nothing deleted
            return failed, stat

        failed, stat = yield self.in_thread(session)
        self.assertEqual(failed, b"-ERR [AUTH] authorization failed")
        self.assertEqual(stat[0], 3)
        self.assertEqual(len(self.cur_names()), 3)

    @defer.inlineCallbacks
    def test_apop(self):  # type: ignore[no-untyped-def]
        def session() -> int:
            pop = self.client()
            pop.apop("alice", "secret")
            count = pop.stat()[0]
            pop.quit()
            return count

        count = yield self.in_thread(session)
        self.assertEqual(count, 3)

    @defer.inlineCallbacks
    def test_big_message_streams_intact(self):  # type: ignore[no-untyped-def]
        lines = [b"Subject: big", b""] + [b".%07d" % i + b"x" * 90 for i in range(30000)]
        put_message(self.maildir, "1500.Z.host", b"\n".join(lines) + b"\n", mtime=time.time())

        def session() -> tuple:
            pop = self.client()
            pop.user("alice")
            pop.pass_("secret")
            size = int(pop.list(4).split()[2])
            resp, got, octets = pop.retr(4)
            pop.quit()
            return size, got, octets

        size, got, octets = yield self.in_thread(session)
        self.assertEqual(got, lines)
        self.assertEqual(size, sum(len(line) + 2 for line in lines))


class STLSServiceTests(ServiceTestBase):
    allow_plaintext = False

    @defer.inlineCallbacks
    def test_stls_then_login(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client()
            before = pop.capa()
            try:
                pop.user("alice")
            except poplib.error_proto as e:
                refused = e.args[0]
            pop.stls(context=client_tls())
            after = pop.capa()
            pop.user("alice")
            pop.pass_("secret")
            count = pop.stat()[0]
            pop.quit()
            return before, refused, after, count

        before, refused, after, count = yield self.in_thread(session)
        self.assertIn("STLS", before)
        self.assertNotIn("USER", before)
        self.assertEqual(refused, b"-ERR [AUTH] plaintext login refused: use STLS first")
        self.assertIn("USER", after)
        self.assertNotIn("STLS", after)
        self.assertEqual(count, 3)


class ImplicitTLSServiceTests(ServiceTestBase):
    allow_plaintext = False
    listen = ["ssl:0:interface=127.0.0.1"]

    @defer.inlineCallbacks
    def test_pop3s(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client(implicit_tls=True)
            caps = pop.capa()
            pop.user("alice")
            pop.pass_("secret")
            message = pop.retr(1)[1]
            pop.quit()
            return caps, message

        caps, message = yield self.in_thread(session)
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        self.assertEqual(message, [b"Subject: one", b"", b"body1"])


class CheckpasswordServiceTests(ServiceTestBase):
    def prepare(self) -> None:
        uid = None
        if os.getuid() == 0:  # a real checkpassword switches to the account: served by a child
            uid = TEST_UID
            make_user_owned(self.root, self.home, self.maildir)
            self.production_opener = True
        self.checkpassword = [write_checkpassword(os.path.abspath(self.mktemp()), self.home, uid)]

    @defer.inlineCallbacks
    def test_checkpassword_login(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client()
            pop.user("alice")
            pop.pass_("secret")
            count = pop.stat()[0]
            pop.quit()
            pop = self.client()
            pop.apop("alice", "secret")
            pop.quit()
            pop = self.client()
            pop.user("alice")
            try:
                pop.pass_("bad")
            except poplib.error_proto as e:
                return count, e.args[0]
            return count, None

        count, failed = yield self.in_thread(session)
        self.assertEqual(count, 3)
        self.assertEqual(failed, b"-ERR [AUTH] authorization failed")


class SystemUserServiceTests(ServiceTestBase):
    """Root daemon, mailbox owned by uid 4242: served by a child running as 4242."""

    def prepare(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        self.production_opener = True
        set_password(self.passwd, "carol", "pw", TEST_UID, TEST_GID, self.home, scheme="PLAIN")
        make_user_owned(self.root, self.home, self.maildir)

    @defer.inlineCallbacks
    def test_system_user_via_child(self):  # type: ignore[no-untyped-def]
        def session() -> tuple:
            pop = self.client()
            pop.user("carol")
            pop.pass_("pw")
            message = pop.retr(3)[1]
            pop.dele(2)
            pop.quit()
            pop = self.client()
            set_password(self.passwd, "alice", "secret", 0, 0, self.home, scheme="PLAIN")
            pop.user("alice")  # uid 0 in users/passwd: refused
            try:
                pop.pass_("secret")
            except poplib.error_proto as e:
                return message, e.args[0]
            return message, None

        message, refused = yield self.in_thread(session)
        self.assertTrue(self.svc.spawner.running)
        self.assertEqual(self.svc.spawner._next_id, 1)  # carol's mailbox came from the root spawner
        self.assertEqual(message, [b"Subject: three", b"", b"last"])
        self.assertEqual(self.cur_names(), ["1000.A.host:2,", "1002.C.host:2,"])
        self.assertEqual(os.stat(os.path.join(self.maildir, "cur", "1000.A.host:2,")).st_uid, TEST_UID)
        self.assertEqual(refused, b"-ERR this account's mailbox belongs to root and is not served")

    @defer.inlineCallbacks
    def test_system_user_apop_via_spawner(self):  # type: ignore[no-untyped-def]
        """APOP (PLAIN entry) through the whole daemon: the root spawner checks the digest again itself."""

        def session() -> tuple:
            pop = self.client()
            pop.apop("carol", "pw")
            count = pop.stat()[0]
            pop.quit()
            return (count,)

        (count,) = yield self.in_thread(session)
        self.assertEqual(count, 3)
        self.assertEqual(self.svc.spawner._next_id, 1)

    @defer.inlineCallbacks
    def test_spawner_refusal_reaches_the_client(self):  # type: ignore[no-untyped-def]
        """users/passwd gives carol a home she does not own: pop3d's check passes, the spawner's refuses."""
        foreign = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(foreign, "Maildir"))
        set_password(self.passwd, "carol", "pw", TEST_UID, TEST_GID, foreign, scheme="PLAIN")

        def session() -> bytes:
            pop = self.client()
            pop.user("carol")
            try:
                pop.pass_("pw")
            except poplib.error_proto as e:
                return e.args[0]
            return b"logged in"

        refused = yield self.in_thread(session)
        self.assertEqual(refused, b"-ERR [AUTH] mailbox refused: home is not a directory owned by the account's uid")


class OpenerTests(SynchronousTestCase):
    def test_modes(self) -> None:
        as_user = MailboxOpener(None, euid=lambda: 1000)
        self.assertEqual(as_user.mode(Account("a", 1000, 1000, "/h")), "local")
        self.assertEqual(as_user.mode(Account("a", None, None, "/h")), "local")
        e = self.assertRaises(LoginRefused, as_user.mode, Account("a", 1001, 1001, "/h"))
        self.assertIn("uid 1001", str(e))
        as_root = MailboxOpener(None, euid=lambda: 0)
        self.assertEqual(as_root.mode(Account("a", 1001, 1001, "/h")), "child")
        self.assertRaises(LoginRefused, as_root.mode, Account("a", None, None, "/h"))
        self.assertRaises(LoginRefused, as_root.mode, Account("a", 0, 0, "/h"))
        self.assertRaises(LoginRefused, as_root.mode, Account("a", 5, None, "/h"))

    def test_refusal_is_a_failed_deferred(self) -> None:
        opener = MailboxOpener(None, euid=lambda: 1000)
        self.failureResultOf(opener(Account("a", 7, 7, "/h")), LoginRefused)


class ReloadTests(SynchronousTestCase):
    def test_reload_certificate_and_hostname(self) -> None:
        root = os.path.abspath(self.mktemp())
        control = os.path.join(root, "control")
        os.makedirs(control)
        reader = ControlReader(root)
        svc = build_pop3_service(root, reader, [], reactor=reactor)
        self.assertIsNone(svc.settings.tls_context)
        with open(os.path.join(control, "servercert.pem"), "wb") as f:
            f.write(server_pem())
        with open(os.path.join(control, "me"), "w") as f:
            f.write("new.example\n")
        reader.reload()
        svc.reload()
        self.assertIs(svc.settings.tls_context, svc.tls)
        self.assertEqual(svc.settings.hostname, "new.example")
        with open(os.path.join(control, "servercert.pem"), "wb") as f:
            f.write(b"garbage")
        svc.reload()  # a broken file keeps the old certificate
        self.assertIs(svc.settings.tls_context, svc.tls)
        self.assertTrue(svc.tls.available)
        self.flushLoggedErrors()


class ConnectionLimitsReloadTests(SynchronousTestCase):
    def test_limits_from_controls_at_start_and_reload(self) -> None:
        root = os.path.abspath(self.mktemp())
        control = os.path.join(root, "control")
        os.makedirs(control)
        reader = ControlReader(root)
        svc = build_pop3_service(root, reader, [], reactor=reactor)
        self.assertEqual((svc.settings.max_connections, svc.settings.max_connections_per_address), (40, 10))
        for name, value in (("concurrencypop3", "100"), ("concurrencypop3perip", "4")):
            with open(os.path.join(control, name), "w") as f:
                f.write(value + "\n")
        reader.reload()
        svc.reload()
        self.assertEqual((svc.settings.max_connections, svc.settings.max_connections_per_address), (100, 4))
        with open(os.path.join(control, "concurrencypop3perip"), "w") as f:
            f.write("none\n")
        self.assertRaises(ControlError, reader.reload)  # the old values stay in force
        svc.reload()
        self.assertEqual((svc.settings.max_connections, svc.settings.max_connections_per_address), (100, 4))
