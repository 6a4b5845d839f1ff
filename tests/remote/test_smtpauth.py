"""
SMTP AUTH in pymta's client: pymta.remote.smtpauth, and the dialogue of
SMTPClientProtocol with credentials (StringTransport + Clock).
"""

from __future__ import annotations

import base64
import io

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.remote.client import SMTPClientProtocol
from pymta.remote.reply import Reply
from pymta.remote.smarthostauth import Credentials
from pymta.remote.smtpauth import LOGIN, PLAIN, AuthExchange, offered_mechanisms

SECRET = "s3cret pass"
CREDENTIALS = Credentials("alice@example.org", SECRET)
PLAIN_RESPONSE = base64.b64encode(b"\0alice@example.org\0" + SECRET.encode())


def ehlo(*lines: bytes) -> Reply:
    return Reply(250, (b"250-relay.example",) + tuple(b"250-" + line for line in lines))


class MechanismTests(unittest.SynchronousTestCase):
    def test_offered(self) -> None:
        self.assertEqual(offered_mechanisms(ehlo(b"PIPELINING", b"AUTH LOGIN plain CRAM-MD5")),
                         {"LOGIN", "PLAIN", "CRAM-MD5"})
        self.assertEqual(offered_mechanisms(ehlo(b"AUTH=LOGIN PLAIN")), {"LOGIN", "PLAIN"})
        self.assertEqual(offered_mechanisms(ehlo(b"AUTHX PLAIN")), frozenset())
        self.assertEqual(offered_mechanisms(None), frozenset())

    def test_plain_preferred_then_login(self) -> None:
        exchange = AuthExchange.start(CREDENTIALS, ehlo(b"AUTH LOGIN PLAIN"))
        assert exchange is not None
        self.assertEqual(exchange.mechanism, PLAIN)
        self.assertEqual(exchange.first(), b"AUTH PLAIN " + PLAIN_RESPONSE)
        exchange = AuthExchange.start(CREDENTIALS, ehlo(b"AUTH LOGIN CRAM-MD5"))
        assert exchange is not None
        self.assertEqual(exchange.mechanism, LOGIN)
        self.assertIsNone(AuthExchange.start(CREDENTIALS, ehlo(b"AUTH CRAM-MD5")))
        self.assertIsNone(AuthExchange.start(CREDENTIALS, ehlo(b"PIPELINING")))

    def test_scrub_removes_what_was_sent(self) -> None:
        exchange = AuthExchange(CREDENTIALS, PLAIN)
        command = exchange.first()
        echoed = "500 unknown command " + command.decode()
        self.assertNotIn(PLAIN_RESPONSE.decode(), exchange.scrub(echoed))
        self.assertIn("[credentials]", exchange.scrub(echoed))

    def test_credentials_repr_hides_the_password(self) -> None:
        self.assertNotIn(SECRET, repr(CREDENTIALS))
        self.assertIn("alice@example.org", repr(CREDENTIALS))


class TLSStringTransport(StringTransport):
    """A StringTransport that records startTLS (the test completes the handshake)."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_started: list[object] = []

    def startTLS(self, contextFactory: object) -> None:
        self.tls_started.append(contextFactory)


class Harness:
    def __init__(self, credentials: Credentials | None = CREDENTIALS, implicit_tls: bool = False,
                 tls: object = "creator", tls_required: bool = True) -> None:
        self.clock = Clock()
        self.proto = SMTPClientProtocol(
            "192.0.2.1", "me.example", "alice@example.org", ["bob@example.test"], io.BytesIO(b"hello\n"),
            timeout=60, tls=tls, tls_required=tls_required, callLater=self.clock.callLater,
            implicit_tls=implicit_tls, credentials=credentials,
        )
        self.transport = TLSStringTransport()
        self.proto.makeConnection(self.transport)
        self.outcomes: list = []
        self.proto.finished.addCallback(self.outcomes.append)

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def sent(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def starttls(self, ehlo: bytes = b"250-relay.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n") -> None:
        """Greeting, EHLO, STARTTLS, handshake: the client has just sent its second EHLO."""
        self.feed(b"220 relay.example ESMTP\r\n")
        assert self.sent() == b"EHLO me.example\r\n"
        self.feed(ehlo)
        assert self.sent() == b"STARTTLS\r\n"
        self.feed(b"220 go ahead\r\n")
        assert self.transport.tls_started == ["creator"]
        self.proto.handshakeCompleted()
        assert self.sent() == b"EHLO me.example\r\n"

    def deliver(self) -> None:
        """MAIL to the final dot, accepted."""
        self.feed(b"250 ok\r\n")
        assert self.sent() == b"RCPT TO:<bob@example.test>\r\n"
        self.feed(b"250 ok\r\n354 go\r\n")
        for _ in range(100):
            if self.transport.producer is None:
                break
            self.transport.producer.resumeProducing()
        self.feed(b"250 queued\r\n")
        self.close()

    def close(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))

    @property
    def outcome(self):
        assert len(self.outcomes) == 1, self.outcomes
        return self.outcomes[0]


class AuthDialogueTests(unittest.SynchronousTestCase):
    def test_auth_plain_after_starttls(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250-AUTH LOGIN PLAIN\r\n250 SIZE 1000\r\n")
        self.assertEqual(h.sent(), b"AUTH PLAIN " + PLAIN_RESPONSE + b"\r\n")
        h.feed(b"235 2.7.0 Authentication successful\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\n")
        h.deliver()
        self.assertEqual(h.outcome.status, SUCCESS)
        self.assertTrue(h.outcome.tls_used)

    def test_auth_login(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250 AUTH LOGIN\r\n")
        self.assertEqual(h.sent(), b"AUTH LOGIN\r\n")
        h.feed(b"334 VXNlcm5hbWU6\r\n")
        self.assertEqual(h.sent(), base64.b64encode(b"alice@example.org") + b"\r\n")
        h.feed(b"334 UGFzc3dvcmQ6\r\n")
        self.assertEqual(h.sent(), base64.b64encode(SECRET.encode()) + b"\r\n")
        h.feed(b"235 ok\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\n")
        h.deliver()
        self.assertEqual(h.outcome.status, SUCCESS)

    def test_a_further_challenge_is_cancelled(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250 AUTH PLAIN\r\n")
        h.sent()
        h.feed(b"334 \r\n")
        self.assertEqual(h.sent(), b"*\r\n")
        h.feed(b"501 5.7.0 cancelled\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)

    def test_no_auth_offered_defers_without_sending_credentials(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250 AUTH CRAM-MD5\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertEqual(h.outcome.text, "192.0.2.1 does not offer AUTH PLAIN or LOGIN, which this route needs. (#4.7.0)\n")
        self.assertTrue(h.outcome.next_host)

    def test_535_is_a_deferral_with_the_servers_text(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250 AUTH PLAIN\r\n")
        h.sent()
        h.feed(b"535 5.7.8 Error: authentication failed: " + PLAIN_RESPONSE + b"\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertFalse(h.outcome.next_host)
        self.assertEqual(h.outcome.text,
                         "Connected to 192.0.2.1 but AUTH PLAIN as alice@example.org failed (see control/smarthostauth).\n"
                         "Remote host said: 535 5.7.8 Error: authentication failed: [credentials]\n")
        self.assertNotIn(SECRET, h.outcome.text)

    def test_454_tries_the_next_address(self) -> None:
        h = Harness()
        h.starttls()
        h.feed(b"250-relay.example\r\n250 AUTH PLAIN\r\n")
        h.sent()
        h.feed(b"454 4.7.0 temporary authentication failure\r\n")
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertTrue(h.outcome.next_host)

    def test_no_starttls_offered_no_credentials_sent(self) -> None:
        h = Harness()
        h.feed(b"220 relay.example ESMTP\r\n")
        self.assertEqual(h.sent(), b"EHLO me.example\r\n")
        h.feed(b"250-relay.example\r\n250 AUTH PLAIN LOGIN\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual((h.outcome.status, h.outcome.text),
                         (DEFERRAL, "Refusing to send credentials without TLS: 192.0.2.1 did not start TLS. (#4.7.10)\n"))

    def test_no_credentials_without_tls_even_when_tls_is_not_required(self) -> None:
        h = Harness(tls=None, tls_required=False)
        h.feed(b"220 relay.example ESMTP\r\n250-relay.example\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
        self.assertEqual(h.sent(), b"EHLO me.example\r\nQUIT\r\n")
        h.close()
        self.assertIn("Refusing to send credentials without TLS", h.outcome.text)

    def test_starttls_refused_no_credentials_sent(self) -> None:
        h = Harness()
        h.feed(b"220 relay.example ESMTP\r\n")
        h.sent()
        h.feed(b"250-relay.example\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
        self.assertEqual(h.sent(), b"STARTTLS\r\n")
        h.feed(b"454 TLS not available\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertIn("Refusing to send credentials without TLS", h.outcome.text)

    def test_helo_only_server_gets_no_credentials(self) -> None:
        h = Harness()
        h.feed(b"220 relay.example\r\n")
        h.sent()
        h.feed(b"502 no EHLO here\r\n")
        self.assertEqual(h.sent(), b"HELO me.example\r\n")
        h.feed(b"250 hi\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertIn("Refusing to send credentials without TLS", h.outcome.text)

    def test_without_credentials_nothing_changes(self) -> None:
        h = Harness(credentials=None, tls_required=False)
        h.starttls(b"250-relay.example\r\n250 STARTTLS\r\n")
        h.feed(b"250-relay.example\r\n250 AUTH PLAIN\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\n")


class ImplicitTLSTests(unittest.SynchronousTestCase):
    def test_tls_from_the_first_byte(self) -> None:
        h = Harness(implicit_tls=True)
        self.assertEqual(h.transport.tls_started, ["creator"])
        self.assertEqual(h.sent(), b"")
        h.proto.handshakeCompleted()
        self.assertEqual(h.sent(), b"")  # the server speaks first
        h.feed(b"220 relay.example ESMTP\r\n")
        self.assertEqual(h.sent(), b"EHLO me.example\r\n")
        h.feed(b"250-relay.example\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")  # no second STARTTLS
        self.assertEqual(h.sent(), b"AUTH PLAIN " + PLAIN_RESPONSE + b"\r\n")
        h.feed(b"235 ok\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\n")
        h.deliver()
        self.assertEqual(h.outcome.status, SUCCESS)
        self.assertTrue(h.outcome.tls_used)

    def test_failed_handshake_tries_the_next_address(self) -> None:
        h = Harness(implicit_tls=True)
        h.proto.connectionLost(Failure(ConnectionDone("certificate verify failed")))
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertTrue(h.outcome.next_host)
        self.assertFalse(h.outcome.tls_failed)  # never retried in plain text
        self.assertTrue(h.outcome.text.startswith("TLS session with 192.0.2.1 failed: "), h.outcome.text)
