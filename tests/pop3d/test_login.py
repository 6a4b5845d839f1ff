"""POP3 logins through the login limiter (pymta.pop3d.login), over StringTransport with task.Clock."""

from __future__ import annotations

import base64
import hashlib
import os

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pymta.authlimit import AuthLimits, LoginLimiter
from pymta.pop3d.auth import LoginFailed
from pymta.pop3d.mailbox import open_local_mailbox
from pymta.pop3d.protocol import POP3Factory, ServerSettings
from tests.pop3d.helpers import FakeAuthenticator, TLSStringTransport, drain, sample_maildir

REFUSED_ADDRESS = b"-ERR [LOGIN-DELAY] too many failed logins from your address, try again later"
REFUSED_ACCOUNT = b"-ERR [LOGIN-DELAY] too many failed logins for this account, try again later"
BUSY = b"-ERR [SYS/TEMP] too many logins in progress, try again later"


class HeldAuthenticator(FakeAuthenticator):
    """Checks wait until the test fires them; C{cancelled} counts the ones cancelled."""

    def __init__(self, home: str) -> None:
        super().__init__(home)
        self.held: list[tuple[defer.Deferred, bool]] = []
        self.cancelled = 0

    def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
        self.calls.append(("pass", user, password))

        def cancel(d: defer.Deferred) -> None:
            self.cancelled += 1

        d: defer.Deferred = defer.Deferred(cancel)
        self.held.append((d, user == b"alice" and password == b"secret"))
        return d

    def finish_one(self) -> None:
        d, ok = self.held.pop(0)
        if not d.called:
            d.callback(self.account) if ok else d.errback(LoginFailed("authorization failed"))


class LoginTestBase(SynchronousTestCase):
    limits = AuthLimits(per_address=3, per_account=5, window=600, concurrency=2)
    held = False

    def setUp(self) -> None:
        self.home = self.mktemp()
        sample_maildir(os.path.join(self.home, "Maildir"))
        self.clock = task.Clock()
        self.auth = HeldAuthenticator(self.home) if self.held else FakeAuthenticator(self.home)
        self.limiter = LoginLimiter(self.clock, self.limits)
        self.settings = ServerSettings(
            hostname="pop.example",
            authenticator=self.auth,
            open_mailbox=lambda account: open_local_mailbox(account.maildir),
            allow_plaintext=True,
            failure_delay=1.0,
            limiter=self.limiter,
            clock=self.clock,
        )
        self.factory = POP3Factory(self.settings)

    def connect(self, host: str = "192.0.2.1"):  # type: ignore[no-untyped-def]
        proto = self.factory.buildProtocol(None)
        address = IPv6Address("TCP", host, 5000) if ":" in host else IPv4Address("TCP", host, 5000)
        transport = TLSStringTransport(peerAddress=address)
        proto.makeConnection(transport)
        transport.clear()
        self.addCleanup(lambda: proto.connectionLost(None) if not proto._closed else None)
        return proto, transport

    def lines(self, proto, transport, data: bytes) -> list[bytes]:  # type: ignore[no-untyped-def]
        transport.clear()
        proto.dataReceived(data)
        drain(transport)
        return transport.value().split(b"\r\n")[:-1]

    def wrong(self, host: str = "192.0.2.1", user: bytes = b"alice") -> None:
        proto, transport = self.connect(host)
        self.lines(proto, transport, b"USER " + user + b"\r\nPASS guess\r\n")
        self.clock.advance(30)


class BudgetTests(LoginTestBase):
    def test_reconnecting_gets_no_fresh_checks(self) -> None:
        for _ in range(3):
            proto, transport = self.connect()
            self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n")
            proto.connectionLost(None)  # hang up before the delayed answer
        proto, transport = self.connect()
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", REFUSED_ADDRESS])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.auth.calls), 3)

    def test_apop_and_auth_plain_are_limited(self) -> None:
        proto, transport = self.connect()
        self.lines(proto, transport, b"APOP alice " + b"0" * 32 + b"\r\n")
        self.lines(proto, transport, b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess") + b"\r\n")
        self.clock.advance(10)
        proto, transport = self.connect()
        self.lines(proto, transport, b"AUTH PLAIN " + base64.b64encode(b"\0bob\0guess") + b"\r\n")
        self.assertEqual(len(self.auth.calls), 3)
        proto, transport = self.connect()
        digest = hashlib.md5(proto.timestamp + b"secret").hexdigest().encode()
        self.assertEqual(self.lines(proto, transport, b"APOP alice " + digest + b"\r\n"), [REFUSED_ADDRESS])
        proto, transport = self.connect()
        self.assertEqual(
            self.lines(proto, transport, b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret") + b"\r\n"), [REFUSED_ADDRESS]
        )
        self.assertEqual(len(self.auth.calls), 3)

    def test_ipv6_64_shares_a_budget(self) -> None:
        for i in range(3):
            self.wrong(f"2001:db8:5:6::{i + 1}")
        proto, transport = self.connect("2001:db8:5:6:ffff::1")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", REFUSED_ADDRESS])
        proto, transport = self.connect("2001:db8:5:7::1")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"+OK "])

    def test_account_budget_spares_the_owner(self) -> None:
        proto, transport = self.connect("198.51.100.1")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"+OK "])
        for i in range(5):
            self.wrong(f"192.0.2.{i + 10}")
        proto, transport = self.connect("192.0.2.99")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", REFUSED_ACCOUNT])
        proto, transport = self.connect("198.51.100.1")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"+OK "])

    def test_delay_grows_across_connections(self) -> None:
        proto, transport = self.connect()
        self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"+OK \r\n-ERR [AUTH] authorization failed\r\n")
        proto, transport = self.connect()
        self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n")
        self.clock.advance(1.9)
        self.assertEqual(transport.value(), b"+OK \r\n")
        self.clock.advance(0.1)
        self.assertEqual(transport.value(), b"+OK \r\n-ERR [AUTH] authorization failed\r\n")

    def test_refusal_logged_once_without_password(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for _ in range(3):
            self.wrong()
        proto, transport = self.connect()
        self.lines(proto, transport, b"USER alice\r\nPASS hunter2\r\n")
        lines = [formatEvent(e) for e in events if "pop3 login" in formatEvent(e)]
        self.assertEqual(
            [line for line in lines if "refused" in line],
            ["pop3 login refused alice from 192.0.2.1: 3 failed or running logins from 192.0.2.1 within 600 seconds"],
        )
        self.assertFalse([line for line in lines if "guess" in line or "hunter2" in line])


class GateTests(LoginTestBase):
    held = True
    limits = AuthLimits(per_address=3, per_account=0, window=600, concurrency=1)

    def test_parallel_logins_share_the_budget(self) -> None:
        self.limiter.configure(AuthLimits(per_address=3, per_account=0, window=600, concurrency=8))
        replies = []
        for _ in range(6):
            proto, transport = self.connect()
            replies.append(self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n"))
        self.assertEqual(replies, [[b"+OK "]] * 3 + [[b"+OK ", REFUSED_ADDRESS]] * 3)
        self.assertEqual(len(self.auth.calls), 3)

    def test_queue_bound_is_a_temporary_refusal(self) -> None:
        for i in range(9):  # 1 running, 8 waiting
            proto, transport = self.connect(f"192.0.2.{i + 1}")
            self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n")
        proto, transport = self.connect("192.0.2.100")
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK ", BUSY])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.auth.calls), 1)
        for _ in range(9):
            self.auth.finish_one()
        self.assertEqual(len(self.auth.calls), 9)
        self.assertEqual(self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n"), [b"+OK "])
        self.auth.finish_one()
        self.assertEqual(transport.value(), b"+OK \r\n+OK \r\n")

    def test_abandoned_logins(self) -> None:
        running, _ = self.connect("192.0.2.1")
        self.lines(running, _, b"USER alice\r\nPASS guess\r\n")
        waiting = [self.connect(f"192.0.2.{i + 2}") for i in range(4)]
        for proto, transport in waiting:
            self.lines(proto, transport, b"USER alice\r\nPASS guess\r\n")
        for proto, transport in waiting:
            proto.connectionLost(None)
        running.connectionLost(None)
        self.assertEqual(self.auth.cancelled, 1)  # the running check was cancelled (a checkpassword is killed)
        self.assertEqual(len(self.auth.calls), 1)  # the waiting ones never ran
        proto, transport = self.connect("192.0.2.50")
        self.lines(proto, transport, b"USER alice\r\nPASS secret\r\n")
        self.assertEqual(len(self.auth.calls), 2)
