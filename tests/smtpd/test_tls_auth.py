"""STARTTLS and AUTH over StringTransport: the injection attack, state reset, AUTH only after TLS, failures."""

from __future__ import annotations

import base64
import os

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.auth import build_portal
from pymta.smtpd.context import ListenerSettings
from pymta.tls import ServerTLS
from tests.smtpd.helpers import MemorySink, Session, make_root
from tests.smtpd.tlsutil import write_cert


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self.mktemp())
        path = os.path.join(self.root, "control", "servercert.pem")
        write_cert(path)
        self.tls = ServerTLS(path)
        db = InMemoryUsernamePasswordDatabaseDontUse()
        db.addUser(b"alice", b"secret")
        self.portal = build_portal([db])
        self.sink = MemorySink()

    def session(self, submission: bool = False, **kw: object) -> Session:
        kw.setdefault("auth_failure_delay", 1.0)
        s = Session(
            self.root,
            sink=self.sink,
            tls_transport=True,
            settings=ListenerSettings(submission=submission),
            tls=self.tls,
            portal=self.portal,
            **kw,  # type: ignore[arg-type]
        )
        self.addCleanup(s.close)
        s.take()
        return s


class StartTLS(Base):
    def test_offered_and_started(self) -> None:
        s = self.session()
        self.assertEqual(s.cmd("EHLO c")[-1], "250 STARTTLS")
        self.assertEqual(s.cmd("STARTTLS"), ["220 ready to start TLS"])
        self.assertIs(s.transport.tls_started, self.tls)
        self.assertNotIn("250-STARTTLS", s.cmd("EHLO c"))
        self.assertNotIn("250 STARTTLS", s.cmd("EHLO c"))
        self.assertEqual(s.cmd("STARTTLS"), ["503 TLS already active (#5.5.1)"])

    def test_pipelined_plaintext_after_starttls_is_discarded(self) -> None:
        s = self.session()
        s.cmd("EHLO c")
        replies = s.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n")
        self.assertEqual(replies, ["220 ready to start TLS"])
        # the injected MAIL was dropped: RCPT needs a new MAIL
        self.assertEqual(s.cmd("RCPT TO:<v@y>"), ["503 MAIL first (#5.5.1)"])

    def test_state_reset(self) -> None:
        s = self.session()
        s.cmd("EHLO before")
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("STARTTLS")
        self.assertIsNone(s.proto.helo)
        self.assertIsNone(s.proto.sender)
        self.assertEqual(s.cmd("RCPT TO:<v@y>"), ["503 MAIL first (#5.5.1)"])

    def test_received_notes_tls(self) -> None:
        s = self.session()
        s.cmd("STARTTLS")
        s.cmd("EHLO c")
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        s.cmd("DATA")
        s.send(b"x\r\n.\r\n")
        self.assertIn(b"with ESMTPS;", self.sink.queued[0].data.split(b"\n")[1])

    def test_no_certificate_no_starttls(self) -> None:
        self.tls = ServerTLS(os.path.join(self.root, "absent.pem"))
        s = self.session()
        self.assertNotIn("250-STARTTLS", s.cmd("EHLO c"))
        self.assertEqual(s.cmd("STARTTLS"), ["502 unimplemented (#5.5.1)"])

    def test_argument_refused(self) -> None:
        s = self.session()
        self.assertEqual(s.cmd("STARTTLS now"), ["501 STARTTLS takes no argument (#5.5.4)"])


class Auth(Base):
    def tls_session(self, **kw: object) -> Session:
        s = self.session(submission=True, **kw)
        s.cmd("STARTTLS")
        return s

    def test_not_offered_before_tls(self) -> None:
        s = self.session(submission=True)
        ehlo = s.cmd("EHLO c")
        self.assertFalse(any("AUTH" in line for line in ehlo))
        self.assertEqual(
            s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret")),
            ["538 encryption required for requested authentication mechanism (#5.7.11)"],
        )

    def test_not_on_port_25(self) -> None:
        s = self.session()
        s.cmd("STARTTLS")
        self.assertFalse(any("AUTH" in line for line in s.cmd("EHLO c")))
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret")), ["502 unimplemented (#5.5.1)"])

    def test_plain_allowed_by_operator(self) -> None:
        s = self.session(submission=True, auth_without_tls=True)
        self.assertIn("250 AUTH PLAIN LOGIN CRAM-MD5", s.cmd("EHLO c"))
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret")), ["235 ok, go ahead (#2.0.0)"])

    def test_plain_initial_response_and_relay(self) -> None:
        s = self.tls_session()
        self.assertIn("250 AUTH PLAIN LOGIN CRAM-MD5", s.cmd("EHLO c"))
        self.assertEqual(s.cmd("MAIL FROM:<alice@x>"), ["530 authentication required (#5.7.0)"])
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"alice\0alice\0secret")), ["235 ok, go ahead (#2.0.0)"])
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret")), ["503 you are already authenticated (#5.5.1)"])
        self.assertEqual(s.cmd("MAIL FROM:<alice@x>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<anyone@far.example>"), ["250 ok"])
        s.cmd("DATA")
        s.send(b"x\r\n.\r\n")
        received = self.sink.queued[0].data.split(b"\n")[:2]
        self.assertIn(b"(AUTH alice)", received[0])
        self.assertIn(b"with ESMTPSA;", received[1])

    def test_plain_with_challenge(self) -> None:
        s = self.tls_session()
        self.assertEqual(s.cmd("AUTH PLAIN"), ["334 "])
        self.assertEqual(s.cmd(b64(b"\0alice\0secret")), ["235 ok, go ahead (#2.0.0)"])

    def test_login(self) -> None:
        s = self.tls_session()
        self.assertEqual(s.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(s.cmd(b64(b"alice")), ["334 UGFzc3dvcmQ6"])
        self.assertEqual(s.cmd(b64(b"secret")), ["235 ok, go ahead (#2.0.0)"])

    def test_login_initial_response(self) -> None:
        s = self.tls_session()
        self.assertEqual(s.cmd("AUTH LOGIN " + b64(b"alice")), ["334 UGFzc3dvcmQ6"])
        self.assertEqual(s.cmd(b64(b"secret")), ["235 ok, go ahead (#2.0.0)"])

    def test_cram_md5(self) -> None:
        import hmac

        s = self.tls_session()
        reply = s.cmd("AUTH CRAM-MD5")[0]
        self.assertTrue(reply.startswith("334 "))
        challenge = base64.b64decode(reply[4:])
        digest = hmac.new(b"secret", challenge, "md5").hexdigest().encode()
        self.assertEqual(s.cmd(b64(b"alice " + digest)), ["235 ok, go ahead (#2.0.0)"])

    def test_malformed_input(self) -> None:
        s = self.tls_session()
        self.assertEqual(s.cmd("AUTH PLAIN !!!notbase64"), ["501 malformed auth input (#5.5.4)"])
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"only-one-part")), ["501 malformed auth input (#5.5.4)"])
        self.assertEqual(s.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(s.cmd("%%%"), ["501 malformed auth input (#5.5.4)"])
        self.assertEqual(s.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(s.cmd("*"), ["501 auth exchange cancelled (#5.0.0)"])
        self.assertEqual(s.cmd("AUTH"), ["501 auth type required (#5.5.4)"])
        self.assertEqual(s.cmd("AUTH GSSAPI"), ["504 auth type unimplemented (#5.5.4)"])
        self.assertEqual(s.cmd("NOOP"), ["250 ok"])

    def test_nul_in_a_user_name_is_malformed(self) -> None:
        """A user name never holds a NUL (PLAIN's separator): LOGIN and CRAM-MD5 refuse one as malformed."""
        s = self.tls_session()
        self.assertEqual(s.cmd("AUTH LOGIN " + b64(b"alice\0x")), ["501 malformed auth input (#5.5.4)"])
        self.assertEqual(s.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(s.cmd(b64(b"alice\0")), ["501 malformed auth input (#5.5.4)"])
        s.cmd("AUTH CRAM-MD5")
        self.assertEqual(s.cmd(b64(b"alice\0x " + b"0" * 32)), ["501 malformed auth input (#5.5.4)"])
        self.assertIsNone(s.proto.auth_user)

    def test_failures_delayed_then_dropped(self) -> None:
        s = self.tls_session()
        bad = "AUTH PLAIN " + b64(b"\0alice\0wrong")
        self.assertEqual(s.send((bad + "\r\nNOOP\r\n").encode()), [])
        s.clock.advance(0.9)
        self.assertEqual(s.take(), [])
        s.clock.advance(0.2)
        self.assertEqual(s.take(), ["535 authorization failed (#5.7.8)", "250 ok"])
        self.assertEqual(s.cmd(bad), [])
        s.clock.advance(2)
        self.assertEqual(s.take(), ["535 authorization failed (#5.7.8)"])
        s.cmd(bad)
        s.clock.advance(3)
        self.assertEqual(s.take(), ["421 too many authentication failures (#4.7.0)"])
        self.assertTrue(s.transport.disconnecting)

    def test_failures_counted_per_address_across_sessions(self) -> None:
        first = self.tls_session()
        bad = "AUTH PLAIN " + b64(b"\0alice\0wrong")
        self.assertEqual(first.cmd(bad), [])
        first.clock.advance(1)
        self.assertEqual(first.cmd(bad), ["535 authorization failed (#5.7.8)"])
        first.clock.advance(2)
        self.assertEqual(first.take(), ["535 authorization failed (#5.7.8)"])
        second = Session(self.root, context=first.context, tls_transport=True, settings=first.proto.settings)
        second.take()
        second.cmd("STARTTLS")
        second.cmd(bad)
        first.clock.advance(2.9)  # the clock is shared through the context
        self.assertEqual(second.take(), [])
        first.clock.advance(0.2)
        self.assertEqual(second.take(), ["535 authorization failed (#5.7.8)"])
        second.close()

    def test_unknown_user(self) -> None:
        s = self.tls_session(auth_failure_delay=0)
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"\0mallory\0secret")), ["535 authorization failed (#5.7.8)"])

    def test_auth_during_transaction_refused(self) -> None:
        s = self.tls_session()
        s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret"))
        s.proto.auth_user = None  # as if not authenticated, to reach the transaction check
        s.proto.sender = "a@x"
        self.assertEqual(s.cmd("AUTH LOGIN"), ["503 no AUTH during a mail transaction (#5.5.1)"])

    def test_starttls_forgets_auth(self) -> None:
        s = self.session(submission=True, auth_without_tls=True)
        s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret"))
        s.cmd("STARTTLS")
        self.assertIsNone(s.proto.auth_user)
        self.assertEqual(s.cmd("MAIL FROM:<a@x>"), ["530 authentication required (#5.7.0)"])

    def test_relayclient_may_submit_without_auth(self) -> None:
        s = self.session(submission=True, rules=':allow,RELAYCLIENT=""')
        self.assertEqual(s.cmd("MAIL FROM:<a@x>"), ["250 ok"])
