"""The filters' end-of-message step among the end-of-data steps: what each step sees, DKIM over the changes."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.dkim.signing import DKIMSigning
from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.milter.api import AddHeader, AddRecipient, ChangeHeader, DeleteRecipient, ReplaceBody
from pymta.smtpd.dkimsignstep import DKIMSignStep
from pymta.smtpd.endofdata import EndOfDataStage, SessionFacts, StepVerdict, dsn_for, final_envelope
from pymta.smtpd.milterstep import SpooledSource
from pymta.smtpd.spool import SpooledMessage
from tests.dkim.helpers import signing_keys, verify_all
from tests.smtpd.helpers import Session, relay_session, send_to_bob
from tests.smtpd.milterfake import FakeMilter, end

CLIENT = "192.0.2.7"
MESSAGE = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: hello\n\nHello Bob.\n..dot\n"


class Seen:
    """An end-of-data step recording the message it was given."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def for_transaction(self, facts: SessionFacts) -> "Seen":
        return self

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.succeed(None)

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        self.seen.append(message.read())
        return defer.succeed(StepVerdict(add=(b"X-Seen: yes\n",)))


class Ordering(SynchronousTestCase):
    def session(self, milter: FakeMilter, stage: EndOfDataStage) -> Session:
        return relay_session(self, stage, f'{CLIENT}:allow,RELAYCLIENT=""', milters=lambda: milter)

    def send(self, s: Session) -> list[str]:
        return send_to_bob(s, MESSAGE)

    def test_checks_see_the_message_as_received_late_steps_as_filtered(self) -> None:
        before, after = Seen(), Seen()
        milter = FakeMilter(eom=end(ChangeHeader(1, "Subject", "[filtered] hello"), ReplaceBody(b"new body\r\n")))
        s = self.session(milter, EndOfDataStage([before], late=[after]))
        self.assertEqual(self.send(s)[-1][:3], "250")
        self.assertIn(b"Subject: hello\n", before.seen[0])
        self.assertTrue(before.seen[0].endswith(b"Hello Bob.\n.dot\n"))
        self.assertIn(b"Subject: [filtered] hello\n", after.seen[0])
        self.assertTrue(after.seen[0].endswith(b"\n\nnew body\n"))
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(b"X-Seen: yes\nX-Seen: yes\nReceived: "))  # every step's fields on top
        self.assertTrue(data.endswith(b"Subject: [filtered] hello\n\nnew body\n"))

    def test_the_signature_covers_the_filters_changes(self) -> None:
        milter = FakeMilter(eom=end(AddHeader("X-Filtered", "yes"), ReplaceBody(b"Hello again.\r\n")))
        s = self.session(milter, EndOfDataStage([], late=[DKIMSignStep(DKIMSigning(signing_keys()))]))
        self.assertEqual(self.send(s)[-1][:3], "250")
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(b"DKIM-Signature: "))
        self.assertIn(b"X-Filtered: yes\n\nHello again.\n", data)
        self.assertEqual(verify_all(data), [True, True])

    def test_dsn_requests_follow_the_recipients(self) -> None:
        milter = FakeMilter(eom=end(AddRecipient("carol@example.org"), DeleteRecipient("bob@example.org")))
        s = self.session(milter, EndOfDataStage())
        replies = s.cmd("MAIL FROM:<alice@example.com> RET=HDRS") + s.cmd("RCPT TO:<bob@example.org> NOTIFY=NEVER")
        replies += s.cmd("RCPT TO:<dan@example.org> NOTIFY=SUCCESS") + s.cmd("DATA")
        self.assertEqual(s.send(MESSAGE.replace(b"\n", b"\r\n") + b".\r\n")[0][:3], "250")
        queued = s.sink.queued[0]
        self.assertEqual(queued.recipients, ["dan@example.org", "carol@example.org"])
        self.assertEqual(queued.dsn, MessageDsn("HDRS", None, (RecipientDsn(("SUCCESS",)), RecipientDsn())))


class Pieces(SynchronousTestCase):
    def test_dsn_for(self) -> None:
        dsn = MessageDsn(None, None, (RecipientDsn(("NEVER",)), RecipientDsn()))
        self.assertIsNone(dsn_for(None, ["a"], ["b"]))
        self.assertIsNone(dsn_for(dsn, ["a", "b"], ["b", "c"]))  # nothing beyond the defaults is left
        self.assertEqual(dsn_for(dsn, ["a", "b"], ["c", "A"]),
                         MessageDsn(None, None, (RecipientDsn(), RecipientDsn(("NEVER",)))))

    def test_final_envelope(self) -> None:
        edits = [StepVerdict(sender="s1"), StepVerdict(recipients=("r",), held=True), StepVerdict(sender="s2")]
        self.assertEqual(final_envelope("s", ["q"], edits), ("s2", ["r"], True))
        self.assertEqual(final_envelope("s", ["q"], []), ("s", ["q"], False))

    def test_source(self) -> None:
        message = SpooledMessage.of([b"Received: from a\n  by b\n", b"Subject:  two spaces\n", b"bogus\n",
                                     b"X-Empty:\n", b"\n", b"body\n", b"more\n"])
        source = SpooledSource(message)
        self.assertEqual(source.header_fields(), [("Received", " from a\n  by b"), ("Subject", "  two spaces"),
                                                  ("X-Empty", "")])
        self.assertEqual(b"".join(source.body_chunks(65536)), b"body\r\nmore\r\n")
        self.assertEqual(b"".join(source.body_chunks(3)), b"body\r\nmore\r\n")
        self.assertTrue(all(len(chunk) <= 3 for chunk in source.body_chunks(3)))
