"""Protocol-level tests of pymta.remote.client.SMTPClientProtocol (StringTransport + Clock)."""

from __future__ import annotations

import io

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.remote.bodysender import CHUNK_SIZE
from pymta.remote.client import MAX_LINE, Reply, SMTPClientProtocol


class Harness:
    def __init__(self, recipients=("bob@example.test",), message=b"hello\n", timeout=60) -> None:
        self.clock = Clock()
        self.proto = SMTPClientProtocol(
            "192.0.2.1", "me.example", "alice@example.org", list(recipients), io.BytesIO(message),
            timeout=timeout, callLater=self.clock.callLater,
        )
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.outcomes = []
        self.proto.finished.addCallback(self.outcomes.append)

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def pump(self) -> None:
        """Let the file sender run (StringTransport does not pull on its own)."""
        for _ in range(1000):
            if self.transport.producer is None:
                return
            self.transport.producer.resumeProducing()

    def sent(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def close(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))

    @property
    def outcome(self):
        assert len(self.outcomes) == 1, self.outcomes
        return self.outcomes[0]


class DialogueTests(unittest.SynchronousTestCase):
    def test_plain_dialogue_without_extensions(self) -> None:
        h = Harness()
        h.feed(b"220 hi\r\n")
        self.assertEqual(h.sent(), b"EHLO me.example\r\n")
        h.feed(b"250 hello\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\n")
        h.feed(b"250 ok\r\n")
        self.assertEqual(h.sent(), b"RCPT TO:<bob@example.test>\r\n")
        h.feed(b"250 ok\r\n")
        self.assertEqual(h.sent(), b"DATA\r\n")
        h.feed(b"354 go\r\n")
        h.pump()
        self.assertEqual(h.sent(), b"hello\r\n.\r\n")
        h.feed(b"250 accepted\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.outcomes, [])  # reported once the socket is closed
        h.close()
        self.assertEqual((h.outcome.status, h.outcome.text), (SUCCESS, "192.0.2.1 accepted message.\nRemote host said: 250 accepted\n"))

    def test_pipelined_mail_refused(self) -> None:
        h = Harness(recipients=["a@x.test", "b@x.test"])
        h.feed(b"220 hi\r\n")
        h.sent()
        h.feed(b"250-hello\r\n250 PIPELINING\r\n")
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                                   b"DATA\r\n")
        h.feed(b"553 sender refused\r\n503 no\r\n503 no\r\n503 no\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual(h.outcome.status, FAILURE)
        self.assertEqual(h.outcome.recipients, {})
        self.assertIn("sender was rejected", h.outcome.text)

    def pipelining(self, recipients=("a@x.test", "b@x.test")) -> Harness:
        h = Harness(recipients=list(recipients), message=b".dot\nlast")
        h.feed(b"220 hi\r\n")
        h.sent()
        h.feed(b"250-hello\r\n250 PIPELINING\r\n")
        self.assertEqual(h.sent(), b"".join(b"%s\r\n" % c for c in [b"MAIL FROM:<alice@example.org>"] + [
            b"RCPT TO:<%s>" % r.encode() for r in recipients] + [b"DATA"]))
        return h

    def test_pipelined_transaction_is_two_writes(self) -> None:
        h = self.pipelining()
        h.feed(b"250 ok\r\n250 ok\r\n550 no such user\r\n")
        self.assertEqual(h.sent(), b"")
        h.feed(b"354 go\r\n")
        self.assertEqual(h.transport.value(), b"..dot\r\nlast\r\n.\r\n")  # at once, the dot with it
        h.sent()
        h.feed(b"250 queued\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual(h.outcome.status, SUCCESS)
        self.assertEqual(h.outcome.recipients[0], ("r", ""))
        self.assertEqual(h.outcome.recipients[1][0], "h")

    def test_pipelined_every_recipient_refused(self) -> None:
        h = self.pipelining()
        h.feed(b"250 ok\r\n550 no\r\n450 later\r\n554 no valid recipients\r\n")
        self.assertEqual(h.sent(), b"QUIT\r\n")
        h.close()
        self.assertEqual((h.outcome.status, h.outcome.text), (FAILURE, "Giving up on 192.0.2.1.\n"))
        self.assertEqual([h.outcome.recipients[i][0] for i in (0, 1)], ["h", "s"])

    def test_pipelined_data_accepted_without_a_recipient_sends_nothing(self) -> None:
        for replies, text in ((b"250 ok\r\n550 no\r\n550 no\r\n", "Giving up on 192.0.2.1.\n"),
                              (b"451 later\r\n250 ok\r\n250 ok\r\n", "Connected to 192.0.2.1 but sender was "
                               "rejected.\nRemote host said: 451 later\n")):
            h = self.pipelining()
            h.feed(replies + b"354 go ahead anyway\r\n")
            self.assertEqual(h.sent(), b"")  # neither the message nor a QUIT it would take for text
            self.assertTrue(h.transport.disconnecting)
            h.close()
            self.assertEqual(h.outcome.text, text)

    def test_smtputf8_when_needed_and_offered(self) -> None:
        h = Harness(recipients=["jürgen@x.test"])
        h.feed(b"220 hi\r\n250-hello\r\n250 SMTPUTF8\r\n")
        self.assertIn(b"MAIL FROM:<alice@example.org> SMTPUTF8\r\n", h.sent())
        h.feed(b"250 ok\r\n")
        self.assertEqual(h.sent(), "RCPT TO:<jürgen@x.test>\r\n".encode())
        h = Harness(recipients=["bob@x.test"])
        h.feed(b"220 hi\r\n250-hello\r\n250 SMTPUTF8\r\n")
        self.assertIn(b"MAIL FROM:<alice@example.org>\r\n", h.sent())

    def test_size_and_body_parameters(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"x" * 1234)
        with open(path, "rb") as message:
            h = Harness()
            h.proto.message = message
            h.feed(b"220 hi\r\n250-hello\r\n250-SIZE 10000\r\n250 8BITMIME\r\n")
            self.assertEqual(h.sent().split(b"\r\n")[1], b"MAIL FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME")
            h.feed(b"552 too big for you\r\n")
            h.close()
            self.assertEqual((h.outcome.status, h.outcome.text),
                             (FAILURE, "Connected to 192.0.2.1 but sender was rejected.\nRemote host said: 552 too big for you\n"))

    def test_quoted_local_part(self) -> None:
        h = Harness(recipients=["john doe@x.test"])
        h.feed(b"220 hi\r\n250 hello\r\n250 ok\r\n")
        self.assertIn(b'RCPT TO:<"john doe"@x.test>\r\n', h.sent())


class BadServerTests(unittest.SynchronousTestCase):
    def test_greeting_never_comes(self) -> None:
        h = Harness(timeout=60)
        h.clock.advance(59)
        self.assertEqual(h.outcomes, [])
        h.clock.advance(1)
        self.assertTrue(h.transport.disconnecting)
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertEqual(h.outcome.text, "Connected to 192.0.2.1 but connection died. (#4.4.2)\n")
        self.assertTrue(h.outcome.next_host)

    def test_silence_after_dot_is_possible_duplicate(self) -> None:
        h = Harness()
        h.feed(b"220 hi\r\n250 hello\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.clock.advance(60)
        h.close()
        self.assertEqual(h.outcome.text, "Connected to 192.0.2.1 but connection died. Possible duplicate! (#4.4.2)\n")
        self.assertFalse(h.outcome.next_host)

    def test_one_megabyte_reply_line(self) -> None:
        h = Harness()
        h.feed(b"220 " + b"x" * 1_000_000)
        self.assertTrue(h.transport.disconnecting)
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertIn("reply line too long", h.outcome.text)

    def test_endless_multiline_reply(self) -> None:
        h = Harness()
        h.feed(b"220 hi\r\n")
        for _ in range(1000):
            if h.transport.disconnecting:
                break
            h.feed(b"250-more and more\r\n")
        self.assertTrue(h.transport.disconnecting)
        h.close()
        self.assertIn("reply too long", h.outcome.text)

    def test_line_at_limit_is_fine(self) -> None:
        h = Harness()
        h.feed(b"220 " + b"x" * (MAX_LINE - 10) + b"\r\n")
        self.assertEqual(h.sent(), b"EHLO me.example\r\n")

    def test_garbage_reply_is_temporary(self) -> None:
        h = Harness()
        h.feed(b"220 hi\r\n250 hello\r\n")
        h.sent()
        h.feed(b"whatever\r\n")
        h.close()
        self.assertEqual(h.outcome.status, DEFERRAL)
        self.assertEqual(h.outcome.text, "Connected to 192.0.2.1 but sender was rejected.\nRemote host said: whatever\n")

    def test_closed_before_greeting_tries_next_host(self) -> None:
        h = Harness()
        h.close()
        self.assertTrue(h.outcome.next_host)
        self.assertEqual(h.outcome.status, DEFERRAL)

    def test_reply_while_message_is_sent_drops(self) -> None:
        h = Harness(message=b"x" * (CHUNK_SIZE + 10))  # two chunks: the second waits for the transport
        h.feed(b"220 hi\r\n250 hello\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        h.feed(b"250 too early\r\n")
        self.assertTrue(h.transport.disconnecting)
        h.close()
        self.assertEqual(h.outcome.text, "Connected to 192.0.2.1 but connection died (unexpected reply). (#4.4.2)\n")

    def test_reply_text_cleaned(self) -> None:
        reply = Reply(550, (b"550-a\x00b\r", b"550 " + b"y" * 6000))
        text = reply.text()
        self.assertTrue(text.startswith("550-a?b\n550 yyy"))
        self.assertEqual(len(text.encode()), 5000)
        self.assertEqual(Reply(0, (b"junk",)).kind, 4)


class KeptConnectionTests(unittest.SynchronousTestCase):
    def kept(self) -> Harness:
        h = Harness()
        h.proto.keep_open = True
        h.feed(b"220 hi\r\n250 hello\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.feed(b"250 queued\r\n")
        self.assertEqual(h.outcome.status, SUCCESS)  # reported without closing
        self.assertTrue(h.proto.idle)
        self.assertFalse(h.transport.disconnecting)
        h.sent()
        return h

    def test_second_transaction(self) -> None:
        h = self.kept()
        d = h.proto.start_transaction("", ["c@x.test"], io.BytesIO(b"again\n"))
        self.assertEqual(h.sent(), b"MAIL FROM:<>\r\n")
        h.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        self.assertEqual(h.sent(), b"RCPT TO:<c@x.test>\r\nDATA\r\nagain\r\n.\r\n")
        h.feed(b"250 second\r\n")
        outcome = self.successResultOf(d)
        self.assertEqual((outcome.status, outcome.stale), (SUCCESS, False))
        h.proto.quit()
        self.assertEqual(h.sent(), b"QUIT\r\n")
        self.assertTrue(h.transport.disconnecting)

    def test_drop_before_dot_is_stale(self) -> None:
        h = self.kept()
        d = h.proto.start_transaction("", ["c@x.test"], io.BytesIO(b"again\n"))
        h.close()
        outcome = self.successResultOf(d)
        self.assertTrue(outcome.stale)
        self.assertEqual(outcome.status, DEFERRAL)

    def test_drop_after_dot_is_not_stale(self) -> None:
        h = self.kept()
        d = h.proto.start_transaction("", ["c@x.test"], io.BytesIO(b"again\n"))
        h.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.close()
        outcome = self.successResultOf(d)
        self.assertFalse(outcome.stale)
        self.assertIn("Possible duplicate!", outcome.text)

    def test_idle_connection_lost_is_reported(self) -> None:
        h = self.kept()
        lost = []
        h.proto.on_idle_lost = lost.append
        h.close()
        self.assertEqual(lost, [h.proto])
        self.assertFalse(h.proto.idle)
        self.successResultOf(h.proto.closed)
