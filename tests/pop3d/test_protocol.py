"""POP3 protocol tests with StringTransport and task.Clock (no reactor)."""

from __future__ import annotations

import base64
import hashlib
import os
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from pymta.authlimit import AuthLimits, LoginLimiter
from pymta.pop3d.auth import LoginTemporaryFailure
from pymta.pop3d.mailbox import open_local_mailbox
from pymta.pop3d.protocol import LoginRefused, POP3Factory, ServerSettings
from tests.pop3d.helpers import FakeAuthenticator, TLSStringTransport, drain, put_message, sample_maildir


class ProtocolTestBase(SynchronousTestCase):
    allow_plaintext = True
    tls_context: object | None = None

    def setUp(self) -> None:
        self.home = self.mktemp()
        self.maildir = sample_maildir(os.path.join(self.home, "Maildir"))
        self.clock = task.Clock()
        self.auth = FakeAuthenticator(self.home)
        self.opened: list = []
        self.settings = ServerSettings(
            hostname="pop.example",
            authenticator=self.auth,
            open_mailbox=self.open_mailbox,
            tls_context=self.tls_context,
            allow_plaintext=self.allow_plaintext,
            failure_delay=2.0,
            limiter=LoginLimiter(self.clock, AuthLimits(per_address=5, window=600)),
            clock=self.clock,
        )
        self.factory = POP3Factory(self.settings)
        self.proto, self.transport = self.connect()

    def open_mailbox(self, account):  # type: ignore[no-untyped-def]
        self.opened.append(account)
        return open_local_mailbox(account.maildir)

    def connect(self, host: str = "192.0.2.1"):  # type: ignore[no-untyped-def]
        proto = self.factory.buildProtocol(None)
        transport = TLSStringTransport(peerAddress=IPv4Address("TCP", host, 5000))
        proto.makeConnection(transport)
        return proto, transport

    def lines(self, data: bytes, proto=None, transport=None) -> list[bytes]:  # type: ignore[no-untyped-def]
        proto = proto or self.proto
        transport = transport or self.transport
        transport.clear()
        proto.dataReceived(data)
        drain(transport)
        return transport.value().split(b"\r\n")[:-1]

    def login(self) -> None:
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"+OK "])


class AuthorizationTests(ProtocolTestBase):
    def test_greeting_has_unique_apop_timestamp(self) -> None:
        first = self.transport.value()
        other, t2 = self.connect()
        self.assertRegex(first, rb"^\+OK <\d+\.\d+\.\d+@pop\.example>\r\n$")
        self.assertNotEqual(first, t2.value())

    def test_commands_before_login(self) -> None:
        self.assertEqual(self.lines(b"STAT\r\nRETR 1\r\nLIST\r\n"), [b"-ERR authorization first"] * 3)
        self.assertEqual(self.lines(b"NOOP\r\n"), [b"+OK "])

    def test_user_pass_syntax(self) -> None:
        self.assertEqual(self.lines(b"PASS x\r\n"), [b"-ERR USER first"])
        self.assertEqual(self.lines(b"USER\r\n"), [b"-ERR syntax error"])
        self.assertEqual(self.lines(b"USER alice\r\nPASS\r\n"), [b"+OK ", b"-ERR syntax error"])

    def test_login_and_lowercase_verbs(self) -> None:
        self.assertEqual(self.lines(b"user alice\r\npass secret\r\nstat\r\n"), [b"+OK ", b"+OK ", b"+OK 3 83"])

    def test_failed_login_delayed_then_closed_after_three(self) -> None:
        self.assertEqual(self.lines(b"USER alice\r\nPASS wrong\r\nNOOP\r\n"), [b"+OK "])
        self.clock.advance(1.9)
        self.assertEqual(self.transport.value(), b"+OK \r\n")
        self.transport.clear()
        self.clock.advance(0.2)
        self.assertEqual(self.transport.value(), b"-ERR [AUTH] authorization failed\r\n+OK \r\n")
        # the delay grows with the address's failures: 2 s each
        self.lines(b"USER alice\r\nPASS wrong\r\n")
        self.clock.advance(3.9)
        self.assertEqual(self.transport.value(), b"+OK \r\n")
        self.clock.advance(0.2)
        self.assertEqual(self.transport.value(), b"+OK \r\n-ERR [AUTH] authorization failed\r\n")
        self.lines(b"USER alice\r\nPASS wrong\r\n")
        self.clock.advance(6)
        self.assertTrue(self.transport.disconnecting)

    def test_address_limit(self) -> None:
        for _ in range(5):
            proto, transport = self.connect()
            self.lines(b"USER alice\r\nPASS wrong\r\n", proto, transport)
            self.clock.advance(2)
        proto, transport = self.connect()
        calls = len(self.auth.calls)
        self.assertEqual(
            self.lines(b"USER alice\r\nPASS secret\r\n", proto, transport),
            [b"+OK ", b"-ERR [LOGIN-DELAY] too many failed logins from your address, try again later"],
        )
        self.assertEqual(len(self.auth.calls), calls)  # refused before any check
        self.assertTrue(transport.disconnecting)
        other, t2 = self.connect("192.0.2.2")
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n", other, t2), [b"+OK ", b"+OK "])
        self.clock.advance(601)
        proto, transport = self.connect()
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n", proto, transport), [b"+OK ", b"+OK "])

    def test_apop(self) -> None:
        stamp = self.transport.value()[4:-2]
        digest = hashlib.md5(stamp + b"secret").hexdigest().encode()
        self.assertEqual(self.lines(b"APOP alice " + digest + b"\r\nSTAT\r\n"), [b"+OK ", b"+OK 3 83"])

    def test_apop_bad_digest(self) -> None:
        self.assertEqual(self.lines(b"APOP alice\r\n"), [b"-ERR syntax error"])
        self.assertEqual(self.lines(b"APOP alice 1234\r\n"), [b"-ERR syntax error: the APOP digest is 32 hexadecimal digits"])
        self.assertEqual(self.lines(b"APOP alice " + b"z" * 32 + b"\r\n"), [b"-ERR syntax error: the APOP digest is 32 hexadecimal digits"])
        self.lines(b"APOP alice " + b"0" * 32 + b"\r\n")
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), b"-ERR [AUTH] authorization failed\r\n")

    def test_auth_plain(self) -> None:
        token = base64.b64encode(b"\0alice\0secret")
        self.assertEqual(self.lines(b"AUTH PLAIN " + token + b"\r\n"), [b"+OK "])
        self.assertEqual(self.proto.state, "TRANSACTION")

    def test_auth_plain_continuation_and_errors(self) -> None:
        self.assertEqual(self.lines(b"AUTH\r\n"), [b"+OK ", b"PLAIN", b"."])
        self.assertEqual(self.lines(b"AUTH CRAM-MD5\r\n"), [b"-ERR unsupported authentication mechanism"])
        self.assertEqual(self.lines(b"AUTH PLAIN\r\n*\r\n"), [b"+ ", b"-ERR authentication cancelled"])
        self.assertEqual(self.lines(b"AUTH PLAIN !!!\r\n"), [b"-ERR invalid base64 in AUTH PLAIN response"])
        self.assertEqual(self.lines(b"AUTH PLAIN " + base64.b64encode(b"alice\0secret") + b"\r\n"), [b"-ERR malformed AUTH PLAIN response"])
        self.assertEqual(
            self.lines(b"AUTH PLAIN " + base64.b64encode(b"bob\0alice\0secret") + b"\r\n"),
            [b"-ERR authorization identity must be empty or the user name"],
        )
        self.assertEqual(self.lines(b"AUTH PLAIN\r\n" + base64.b64encode(b"alice\0alice\0secret") + b"\r\n"), [b"+ ", b"+OK "])

    def test_line_too_long(self) -> None:
        self.assertEqual(self.lines(b"USER " + b"a" * 600 + b"\r\nNOOP\r\n"), [b"-ERR line too long", b"+OK "])
        # an unterminated flood is cut at 512 and the rest of that line skipped
        self.assertEqual(self.lines(b"x" * 513), [b"-ERR line too long"])
        self.assertEqual(self.lines(b"y" * 5000 + b"\r\nNOOP\r\n"), [b"+OK "])
        self.assertFalse(self.transport.disconnecting)

    def test_quit_in_authorization(self) -> None:
        self.assertEqual(self.lines(b"QUIT\r\n"), [b"+OK "])
        self.assertTrue(self.transport.disconnecting)

    def test_pipelined_commands_wait_for_slow_check(self) -> None:
        self.auth.result = defer.Deferred()
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\nSTAT\r\n"), [b"+OK "])
        self.transport.clear()
        self.auth.result.callback(self.auth.account)
        self.assertEqual(self.transport.value(), b"+OK \r\n+OK 3 83\r\n")

    def test_temporary_failure(self) -> None:
        self.auth.result = defer.fail(LoginTemporaryFailure("checkpassword unavailable"))
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"-ERR [SYS/TEMP] checkpassword unavailable"])

    def test_no_maildir(self) -> None:
        self.auth.account = type(self.auth.account)("alice", None, None, self.mktemp())
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"-ERR this user has no $HOME/Maildir"])
        self.assertTrue(self.transport.disconnecting)

    def test_refused_account(self) -> None:
        self.settings.open_mailbox = lambda account: defer.fail(LoginRefused("mailbox belongs to another uid"))
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"-ERR mailbox belongs to another uid"])
        self.assertTrue(self.transport.disconnecting)

    def test_timeout_closes_silently(self) -> None:
        self.settings.timeout = 60  # shorter than the time to log in (login_within)
        proto, transport = self.connect("192.0.2.9")
        transport.clear()
        self.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")


class PlaintextPolicyTests(ProtocolTestBase):
    allow_plaintext = False
    tls_context = object()

    def test_capa_before_tls(self) -> None:
        self.assertEqual(
            self.lines(b"CAPA\r\n"),
            [b"+OK capability list follows", b"TOP", b"UIDL", b"PIPELINING", b"RESP-CODES", b"STLS", b"IMPLEMENTATION pymta", b"."],
        )

    def test_user_and_auth_plain_refused(self) -> None:
        refusal = b"-ERR [AUTH] plaintext login refused: use STLS first"
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [refusal, refusal])
        self.assertEqual(self.lines(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret") + b"\r\n"), [refusal])
        self.assertEqual(self.auth.calls, [])

    def test_apop_allowed_in_plaintext(self) -> None:
        stamp = self.transport.value()[4:-2]
        digest = hashlib.md5(stamp + b"secret").hexdigest().encode()
        self.assertEqual(self.lines(b"APOP alice " + digest + b"\r\n"), [b"+OK "])

    def test_stls_discards_pipelined_plaintext(self) -> None:
        self.assertEqual(self.lines(b"STLS\r\nUSER alice\r\nPASS secret\r\n"), [b"+OK begin TLS negotiation"])
        self.assertIs(self.transport.tls_context, self.settings.tls_context)
        self.assertEqual(self.auth.calls, [])
        self.assertEqual(self.lines(b"STLS\r\n"), [b"-ERR already using TLS"])
        caps = self.lines(b"CAPA\r\n")
        self.assertIn(b"USER", caps)
        self.assertIn(b"SASL PLAIN", caps)
        self.assertNotIn(b"STLS", caps)
        self.assertEqual(self.lines(b"USER alice\r\nPASS secret\r\n"), [b"+OK ", b"+OK "])

    def test_stls_without_context(self) -> None:
        self.settings.tls_context = None
        proto, transport = self.connect()
        self.assertEqual(self.lines(b"STLS\r\n", proto, transport), [b"-ERR STLS not available"])


class TransactionTests(ProtocolTestBase):
    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_moved_to_cur(self) -> None:
        self.assertEqual(os.listdir(os.path.join(self.maildir, "new")), [])
        self.assertEqual(sorted(os.listdir(os.path.join(self.maildir, "cur"))), ["1000.A.host:2,", "1001.B.host:2,", "1002.C.host:2,"])

    def test_stat_list_uidl(self) -> None:
        self.assertEqual(self.lines(b"STAT\r\n"), [b"+OK 3 83"])
        self.assertEqual(self.lines(b"LIST\r\n"), [b"+OK ", b"1 23", b"2 36", b"3 24", b"."])
        self.assertEqual(self.lines(b"LIST 2\r\n"), [b"+OK 2 36"])
        self.assertEqual(self.lines(b"UIDL\r\n"), [b"+OK ", b"1 1000.A.host", b"2 1001.B.host", b"3 1002.C.host", b"."])
        self.assertEqual(self.lines(b"UIDL 3\r\n"), [b"+OK 3 1002.C.host"])

    def test_retr_sizes_match(self) -> None:
        out = self.lines(b"RETR 2\r\n")
        self.assertEqual(out, [b"+OK ", b"Subject: two", b"", b"..dot", b"line2", b"line3", b"."])
        body = b"\r\n".join(out[1:-1]) + b"\r\n"
        self.assertEqual(len(body) - 1, 36)  # minus the stuffed dot
        self.assertEqual(self.lines(b"RETR 3\r\n"), [b"+OK ", b"Subject: three", b"", b"last", b"."])

    def test_top(self) -> None:
        self.assertEqual(self.lines(b"TOP 2 1\r\n"), [b"+OK ", b"Subject: two", b"", b"..dot", b"."])
        self.assertEqual(self.lines(b"TOP 2 0\r\n"), [b"+OK ", b"Subject: two", b"", b"."])
        self.assertEqual(self.lines(b"RETR 2 1\r\n"), [b"+OK ", b"Subject: two", b"", b"..dot", b"."])
        self.assertEqual(self.lines(b"TOP 2\r\nTOP 2 x\r\n"), [b"-ERR syntax error"] * 2)

    def test_top_and_retr_exact_bytes(self) -> None:
        # RFC 1939 TOP: header, the empty line, k body lines, then "." (qmail-pop3d
        # sends one more empty line before the "."; pymta does not, for TOP or RETR)
        self.transport.clear()
        self.proto.dataReceived(b"TOP 2 0\r\nTOP 2 2\r\nRETR 3\r\nLIST 3\r\n")
        drain(self.transport)
        self.assertEqual(
            self.transport.value(),
            b"+OK \r\nSubject: two\r\n\r\n.\r\n"
            b"+OK \r\nSubject: two\r\n\r\n..dot\r\nline2\r\n.\r\n"
            b"+OK \r\nSubject: three\r\n\r\nlast\r\n.\r\n"
            b"+OK 3 24\r\n",  # the CRLF size: "Subject: three\r\n\r\nlast" and the line end the file lacks
        )

    def test_message_number_errors(self) -> None:
        self.assertEqual(
            self.lines(b"RETR x\r\nRETR 0\r\nRETR 4\r\nRETR\r\nLIST 99\r\nDELE -1\r\nRETR 99999999999999999999\r\n"),
            [
                b"-ERR syntax error",
                b"-ERR messages are counted from 1",
                b"-ERR not that many messages",
                b"-ERR syntax error",
                b"-ERR not that many messages",
                b"-ERR syntax error",
                b"-ERR not that many messages",
            ],
        )

    def test_dele_last_rset(self) -> None:
        self.assertEqual(self.lines(b"LAST\r\nDELE 2\r\nDELE 1\r\nLAST\r\n"), [b"+OK 0", b"+OK ", b"+OK ", b"+OK 2"])
        self.assertEqual(self.lines(b"RETR 2\r\nDELE 2\r\nLIST 1\r\n"), [b"-ERR already deleted"] * 3)
        self.assertEqual(self.lines(b"STAT\r\nLIST\r\n"), [b"+OK 3 24", b"+OK ", b"3 24", b"."])
        self.assertEqual(self.lines(b"RSET\r\nLAST\r\nSTAT\r\n"), [b"+OK ", b"+OK 0", b"+OK 3 83"])

    def test_quit_deletes_marked_only(self) -> None:
        self.assertEqual(self.lines(b"DELE 1\r\nDELE 3\r\nQUIT\r\n"), [b"+OK ", b"+OK ", b"+OK "])
        self.assertEqual(os.listdir(os.path.join(self.maildir, "cur")), ["1001.B.host:2,"])
        self.assertTrue(self.transport.disconnecting)

    def test_disconnect_deletes_nothing(self) -> None:
        self.lines(b"DELE 1\r\nDELE 2\r\n")
        self.proto.connectionLost(None)
        self.assertEqual(len(os.listdir(os.path.join(self.maildir, "cur"))), 3)

    def test_file_vanished_between_list_and_retr(self) -> None:
        os.unlink(os.path.join(self.maildir, "cur", "1001.B.host:2,"))
        self.assertEqual(self.lines(b"RETR 2\r\nTOP 2 0\r\nNOOP\r\n"), [b"-ERR unable to open that message"] * 2 + [b"+OK "])

    def test_flag_rename_by_other_client_followed(self) -> None:
        cur = os.path.join(self.maildir, "cur")
        os.rename(os.path.join(cur, "1000.A.host:2,"), os.path.join(cur, "1000.A.host:2,S"))
        self.assertEqual(self.lines(b"RETR 1\r\n")[0:2], [b"+OK ", b"Subject: one"])
        self.assertEqual(self.lines(b"DELE 1\r\nQUIT\r\n"), [b"+OK ", b"+OK "])
        self.assertNotIn("1000.A.host:2,S", os.listdir(cur))

    def test_maildir_vanished_at_quit(self) -> None:
        import shutil

        shutil.rmtree(self.maildir)
        self.assertEqual(self.lines(b"RETR 1\r\nDELE 1\r\nQUIT\r\n"), [b"-ERR unable to open that message", b"+OK ", b"+OK "])

    def test_unlink_failure_reported(self) -> None:
        if os.getuid() == 0:
            # root ignores directory permissions; make unlink fail another way
            cur = os.path.join(self.maildir, "cur")
            victim = os.path.join(cur, "1000.A.host:2,")
            os.unlink(victim)
            os.mkdir(victim)  # unlink() of a directory fails with EISDIR/EPERM
        else:
            os.chmod(os.path.join(self.maildir, "cur"), 0o555)
            self.addCleanup(os.chmod, os.path.join(self.maildir, "cur"), 0o755)
        self.assertEqual(self.lines(b"DELE 1\r\nQUIT\r\n"), [b"+OK ", b"-ERR unable to unlink all deleted messages", b"+OK "])

    def test_unimplemented_and_capa(self) -> None:
        self.assertEqual(self.lines(b"USER bob\r\nFOO\r\n"), [b"-ERR unimplemented"] * 2)
        self.assertEqual(self.lines(b"CAPA\r\n"), [b"+OK capability list follows", b"TOP", b"UIDL", b"PIPELINING", b"RESP-CODES", b"IMPLEMENTATION pymta", b"."])

    def test_pipelined_retr(self) -> None:
        out = self.lines(b"RETR 1\r\nRETR 3\r\nSTAT\r\n")
        self.assertEqual(out, [b"+OK ", b"Subject: one", b"", b"body1", b".", b"+OK ", b"Subject: three", b"", b"last", b".", b"+OK 3 83"])

    def test_large_message_streamed(self) -> None:
        big = (b"x" * 1000 + b"\n.\n") * 2000
        put_message(self.maildir, "2000.D.host:2,", big, sub="cur")
        proto, transport = self.connect()
        self.lines(b"USER alice\r\nPASS secret\r\n", proto, transport)
        transport.clear()
        proto.dataReceived(b"RETR 4\r\n")
        self.assertLess(len(transport.value()), 70000)  # one chunk at a time
        drain(transport)
        wire = transport.value()
        self.assertEqual(wire.count(b"\r\n..\r\n"), 2000)
        self.assertTrue(wire.endswith(b"\r\n..\r\n.\r\n"))


_VERBS = st.sampled_from([b"USER", b"PASS", b"APOP", b"AUTH", b"STLS", b"CAPA", b"STAT", b"LIST", b"UIDL",
                          b"RETR", b"TOP", b"DELE", b"RSET", b"LAST", b"NOOP", b"XYZ", b"", b"PLAIN"])
_ARGS = st.one_of(st.binary(max_size=40), st.integers(-3, 10).map(lambda i: b"%d" % i), st.just(b"alice"), st.just(b"secret"))
_SCRIPTS = st.lists(st.tuples(_VERBS, st.lists(_ARGS, max_size=3)), max_size=25)


class FuzzTests(ProtocolTestBase):
    """Arbitrary client input never crashes the session or deletes anything."""

    @settings(max_examples=150, deadline=None)
    @given(_SCRIPTS, st.booleans())
    def test_random_sessions(self, script, logged_in) -> None:  # type: ignore[no-untyped-def]
        proto, transport = self.connect()
        if logged_in:
            self.lines(b"USER alice\r\nPASS secret\r\n", proto, transport)
        data = b"".join(b" ".join([verb] + argv).replace(b"\n", b"") + b"\r\n" for verb, argv in script)
        self.lines(data, proto, transport)
        self.clock.advance(10)
        drain(transport)
        self.assertNotIn(b"internal error", transport.value())
        self.assertEqual(self.flushLoggedErrors(), [])
        proto.connectionLost(None)
        self.assertEqual(len(os.listdir(os.path.join(self.maildir, "cur"))) + len(os.listdir(os.path.join(self.maildir, "new"))), 3)


class HeaderOnlyMessageTests(ProtocolTestBase):
    """A message without an empty line: TOP still ends its header with one."""

    def setUp(self) -> None:
        super().setUp()
        put_message(self.maildir, "1003.D.host", b"Subject: four\nX: y\n", mtime=time.time() - 50)
        self.login()

    def test_top_zero_supplies_the_empty_line(self) -> None:
        self.transport.clear()
        self.proto.dataReceived(b"TOP 4 0\r\nTOP 4 5\r\nRETR 4\r\n")
        drain(self.transport)
        self.assertEqual(
            self.transport.value(),
            b"+OK \r\nSubject: four\r\nX: y\r\n\r\n.\r\n"
            b"+OK \r\nSubject: four\r\nX: y\r\n\r\n.\r\n"
            b"+OK \r\nSubject: four\r\nX: y\r\n.\r\n",
        )
