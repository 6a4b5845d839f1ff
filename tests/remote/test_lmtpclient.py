"""LMTPClientProtocol over StringTransport and a Clock: LHLO, the pipelined envelope, one reply per recipient."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS, DeliveryResult
from pymta.remote.lmtpclient import MAX_REPLY_LINES, LMTPClientProtocol, LMTPOutcome

LHLO_REPLY = b"250-mail.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"


class Harness:
    """A client connected to a StringTransport, greeted and past LHLO unless told otherwise."""

    def __init__(self, testcase: unittest.TestCase, message: bytes = b"Subject: x\n\n.hello\n", greet: bool = True):
        path = testcase.mktemp()
        with open(path, "wb") as f:
            f.write(message)
        self.file = open(path, "rb")
        testcase.addCleanup(self.file.close)
        self.clock = Clock()
        self.proto = LMTPClientProtocol("/run/lmtp", "pymta.example", timeout=60, callLater=self.clock.callLater)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.ready: list = []
        self.proto.ready.addCallback(self.ready.append)
        self.outcomes: list[LMTPOutcome] = []
        if greet:
            self.server(b"220 mail.example Dovecot ready.\r\n")
            testcase.assertEqual(self.sent(), b"LHLO pymta.example\r\n")
            self.server(LHLO_REPLY)
            testcase.assertEqual(self.ready, [None])
            testcase.assertTrue(self.proto.idle)

    def server(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def sent(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def send(self, recipients: list[str], reset: bool = False, sender: str = "alice@pymta.example") -> None:
        self.file.seek(0)
        self.proto.transaction(sender, recipients, self.file, reset=reset).addCallback(self.outcomes.append)

    def pump(self) -> None:
        for _ in range(1000):  # let the file sender run (StringTransport does not pull on its own)
            if self.transport.producer is None:
                break
            self.transport.producer.resumeProducing()

    def lost(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))

    @property
    def results(self) -> list[tuple[str, str]]:
        assert len(self.outcomes) == 1, self.outcomes
        return [(r.status, r.text) for r in self.outcomes[0].results]


class TransactionTests(unittest.TestCase):
    def test_envelope_is_pipelined_and_each_recipient_gets_its_reply(self) -> None:
        h = Harness(self)
        h.send(["ann@mail.example", "nobody@mail.example", "bob@mail.example", "full@mail.example"])
        self.assertEqual(h.sent(), b"MAIL FROM:<alice@pymta.example> BODY=8BITMIME\r\nRCPT TO:<ann@mail.example>\r\n"
                         b"RCPT TO:<nobody@mail.example>\r\nRCPT TO:<bob@mail.example>\r\nRCPT TO:<full@mail.example>\r\n")
        h.server(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <nobody@mail.example> User doesn't exist\r\n"
                 b"250 2.1.5 OK\r\n")
        self.assertEqual(h.sent(), b"")  # the last RCPT's reply is still due
        h.server(b"451 4.3.0 <full@mail.example> Temporary internal error\r\n")
        self.assertEqual(h.sent(), b"DATA\r\n")
        h.server(b"354 OK\r\n")
        h.pump()
        self.assertEqual(h.sent(), b"Subject: x\r\n\r\n..hello\r\n.\r\n")
        h.server(b"250 2.0.0 <ann@mail.example> abc Saved\r\n")
        self.assertEqual(h.outcomes, [])
        h.server(b"552-5.2.2 <bob@mail.example>\r\n552 5.2.2 Quota exceeded\r\n")
        self.assertEqual(h.results, [
            (SUCCESS, "/run/lmtp accepted message.\nRemote host said: 250 2.0.0 <ann@mail.example> abc Saved\n"),
            (FAILURE, "/run/lmtp does not like recipient.\nRemote host said: 550 5.1.1 <nobody@mail.example> User "
                      "doesn't exist\n"),
            (FAILURE, "/run/lmtp failed after I sent the message.\nRemote host said: 552-5.2.2 <bob@mail.example>\n"
                      "552 5.2.2 Quota exceeded\n"),
            (DEFERRAL, "/run/lmtp does not like recipient.\nRemote host said: 451 4.3.0 <full@mail.example> Temporary "
                       "internal error\n"),
        ])
        self.assertTrue(h.proto.idle)
        self.assertFalse(h.transport.disconnecting)

    def test_next_transaction_starts_with_rset(self) -> None:
        h = Harness(self, message=b"hi\n")
        h.send(["ann@mail.example"])
        h.sent()
        h.server(b"250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.server(b"250 saved\r\n")
        h.outcomes.clear()
        h.sent()
        h.send(["bob@mail.example"], reset=True, sender="")
        self.assertEqual(h.sent(), b"RSET\r\nMAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<bob@mail.example>\r\n")
        h.server(b"250 2.0.0 OK\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        self.assertEqual(h.sent(), b"DATA\r\nhi\r\n.\r\n")
        h.server(b"250 saved\r\n")
        self.assertEqual(h.results[0][0], SUCCESS)

    def test_no_recipient_accepted_sends_no_data(self) -> None:
        h = Harness(self)
        h.send(["x@mail.example", "y@mail.example"])
        h.sent()
        h.server(b"250 ok\r\n550 5.1.1 unknown\r\n450 4.2.0 later\r\n")
        self.assertEqual(h.sent(), b"")
        self.assertEqual([status for status, _ in h.results], [FAILURE, DEFERRAL])
        self.assertTrue(h.proto.idle)

    def test_mail_refused_answers_every_recipient(self) -> None:
        for code, status in ((b"550 5.7.1", FAILURE), (b"451 4.3.0", DEFERRAL)):
            h = Harness(self)
            h.send(["x@mail.example", "y@mail.example"])
            h.sent()
            h.server(code + b" no\r\n503 5.5.1 MAIL needed first\r\n503 5.5.1 MAIL needed first\r\n")
            text = f"Connected to /run/lmtp but sender was rejected.\nRemote host said: {code.decode()} no\n"
            self.assertEqual(h.results, [(status, text), (status, text)])
            self.assertEqual(h.sent(), b"")

    def test_data_refused(self) -> None:
        h = Harness(self)
        h.send(["x@mail.example", "y@mail.example"])
        h.sent()
        h.server(b"250 ok\r\n250 ok\r\n550 no\r\n554 5.5.1 no thanks\r\n")
        self.assertEqual(h.results, [
            (FAILURE, "/run/lmtp failed on DATA command.\nRemote host said: 554 5.5.1 no thanks\n"),
            (FAILURE, "/run/lmtp does not like recipient.\nRemote host said: 550 no\n"),
        ])

    def test_smtputf8_when_offered_and_needed(self) -> None:
        h = Harness(self, greet=False)
        h.server(b"220 hi\r\n250-x\r\n250 SMTPUTF8\r\n")
        h.sent()
        h.send(["jörg@mail.example"])
        self.assertEqual(h.sent(), "MAIL FROM:<alice@pymta.example> SMTPUTF8\r\nRCPT TO:<jörg@mail.example>\r\n"
                         .encode("utf-8"))


class ConnectionTests(unittest.TestCase):
    def test_greeting_or_lhlo_refused(self) -> None:
        h = Harness(self, greet=False)
        h.server(b"421 4.3.2 too busy\r\n")
        self.assertEqual(h.ready, ["Connected to /run/lmtp but greeting failed.\nRemote host said: 421 4.3.2 too busy\n"])
        self.assertEqual(h.sent(), b"QUIT\r\n")
        self.assertTrue(h.transport.disconnecting)
        h = Harness(self, greet=False)
        h.server(b"220 hi\r\n500 5.5.1 say LHLO\r\n")
        self.assertEqual(h.ready, ["Connected to /run/lmtp but my name was rejected.\nRemote host said: 500 5.5.1 "
                                   "say LHLO\n"])
        self.assertFalse(h.proto.idle)

    def test_lost_before_greeting(self) -> None:
        h = Harness(self, greet=False)
        h.lost()
        self.assertEqual(h.ready, ["Connected to /run/lmtp but connection died. (#4.4.2)\n"])

    def test_lost_after_the_dot_keeps_the_replies_that_came(self) -> None:
        h = Harness(self)
        h.send(["ann@mail.example", "bob@mail.example"])
        h.server(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.server(b"250 2.0.0 <ann@mail.example> Saved\r\n")
        h.lost()
        self.assertEqual(h.results, [
            (SUCCESS, "/run/lmtp accepted message.\nRemote host said: 250 2.0.0 <ann@mail.example> Saved\n"),
            (DEFERRAL, "Connected to /run/lmtp but connection died. Possible duplicate! (#4.4.2)\n"),
        ])

    def test_lost_before_the_dot_on_a_new_connection_is_a_deferral(self) -> None:
        h = Harness(self)
        h.send(["ann@mail.example"])
        h.server(b"250 ok\r\n")
        h.lost()
        self.assertEqual(h.results, [(DEFERRAL, "Connected to /run/lmtp but connection died. (#4.4.2)\n")])

    def test_kept_connection_gone_is_stale(self) -> None:
        h = Harness(self)
        h.send(["ann@mail.example"], reset=True)
        h.lost()
        self.assertEqual(h.outcomes, [LMTPOutcome(stale=True)])
        h = Harness(self)
        h.send(["ann@mail.example"], reset=True)
        h.server(b"421 4.4.2 shutting down\r\n")
        self.assertTrue(h.transport.disconnecting)
        h.lost()
        self.assertEqual(h.outcomes, [LMTPOutcome(stale=True)])

    def test_timeout_drops_the_connection(self) -> None:
        h = Harness(self)
        h.clock.advance(3600)  # idle: no timeout runs
        self.assertFalse(h.transport.disconnecting)
        h.send(["ann@mail.example"])
        h.clock.advance(59)
        h.server(b"250 ok\r\n")
        h.clock.advance(59)
        self.assertFalse(h.transport.disconnecting)
        h.clock.advance(1)
        self.assertTrue(h.transport.disconnecting)
        h.lost()
        self.assertEqual(h.results, [(DEFERRAL, "Connected to /run/lmtp but connection died. (#4.4.2)\n")])

    def test_unexpected_or_long_reply_drops_the_connection(self) -> None:
        h = Harness(self)
        lost: list = []
        h.proto.on_idle_lost = lost.append
        h.server(b"250 what?\r\n")
        self.assertTrue(h.transport.disconnecting)
        h.lost()
        self.assertEqual(lost, [h.proto])
        h = Harness(self)
        h.send(["ann@mail.example"])
        h.server(b"250-x\r\n" * (MAX_REPLY_LINES + 1))
        self.assertTrue(h.transport.disconnecting)
        h.lost()
        self.assertEqual(h.results, [(DEFERRAL, "Connected to /run/lmtp but connection died (reply too long). "
                                                "(#4.4.2)\n")])

    def test_transaction_needs_an_idle_connection(self) -> None:
        h = Harness(self, greet=False)
        self.assertRaises(RuntimeError, h.proto.transaction, "a@b", ["c@d"], h.file)

    def test_results_are_delivery_results(self) -> None:
        h = Harness(self)
        h.send(["ann@mail.example"])
        h.server(b"250 ok\r\n250 ok\r\n354 go\r\n")
        h.pump()
        h.server(b"250 saved\r\n")
        self.assertIsInstance(h.outcomes[0].results[0], DeliveryResult)
