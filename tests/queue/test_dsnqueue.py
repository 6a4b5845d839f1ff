"""
DSN data through pymta-send (docs/internals.md, "DSN data in the queue"):
dsn/N/ID written by preprocessing, NOTIFY=NEVER and NOTIFY=SUCCESS honoured
by the checkpoint, RFC 3464 reports from finishing, the file removed with
its message - on a task.Clock with recording channels.
"""

from __future__ import annotations

import email
import email.policy
import os

from twisted.trial import unittest

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.interfaces import DeliveryResult
from pymta.queue.dsnfile import DsnFile, dsn_path, encode_dsn_file, parse_dsn_file, read_dsn_file
from pymta.queue.envelope import EnvelopeError, encode_todo
from tests.queue.test_scheduler import RecordingChannel, SchedulerTestMixin, queue_message

NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)\n"


def report_of(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


class DsnFileTests(unittest.SynchronousTestCase):
    def test_round_trip(self) -> None:
        dsn = MessageDsn("HDRS", "e+2B", (RecipientDsn(("SUCCESS",), "rfc822;o@x"), RecipientDsn(), RecipientDsn(("NEVER",))))
        data = encode_dsn_file(dsn, ["a@x", "b@x", "pre-c@x"])
        self.assertEqual(data, b"RHDRS\0Ee+2B\0Ta@x\0NSUCCESS\0Orfc822;o@x\0Tpre-c@x\0NNEVER\0")
        found = parse_dsn_file(data + b"Sdelivered:a@x\0Srelayed:a@x\0")
        self.assertEqual(found, DsnFile("HDRS", "e+2B", {"a@x": RecipientDsn(("SUCCESS",), "rfc822;o@x"),
                                                         "pre-c@x": RecipientDsn(("NEVER",))}, {"a@x": "delivered"}))
        self.assertEqual(found.request("b@x"), RecipientDsn())

    def test_truncated_append_is_ignored(self) -> None:
        self.assertEqual(parse_dsn_file(b"RFULL\0Sdeliv").successes, {})
        self.assertRaises(EnvelopeError, parse_dsn_file, b"RFULL\0Ta@")
        self.assertEqual(parse_dsn_file(b"Sgone:a@x\0Srelayed:b@x\0").successes, {"b@x": "relayed"})  # skipped
        self.assertRaises(EnvelopeError, parse_dsn_file, b"Xwhat\0")


class DsnQueueTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"locals": "mail.example\n"}

    def queue(self, dsn: MessageDsn, recipients: list[str], sender: str = "alice@far.example") -> int:
        todo = encode_todo(1000, 4242, sender, recipients, dsn)
        return queue_message(self.layout, sender, recipients, todo=todo)

    def test_dsn_file_follows_the_message(self) -> None:
        self.local = RecordingChannel(hold=True)
        dsn = MessageDsn("FULL", "id1", (RecipientDsn(("NEVER",)),))
        message_id = self.queue(dsn, ["bob@mail.example"])
        self.start()
        found = read_dsn_file(self.layout, message_id)
        assert found is not None
        self.assertEqual((found.ret, found.envid, found.request("bob@mail.example").notify), ("FULL", "id1", ("NEVER",)))
        self.local.release()
        self.clock.advance(0)
        self.assertFalse(os.path.exists(dsn_path(self.layout, message_id)))
        self.assertEqual(self.queue_files(), [])

    def test_interrupted_preprocessing_is_redone(self) -> None:
        """A crash after preprocessing wrote some files but before todo/ID went: the next start writes them afresh."""
        self.local = RecordingChannel(hold=True)
        dsn = MessageDsn(recipients=(RecipientDsn(("SUCCESS",)),))
        message_id = self.queue(dsn, ["bob@mail.example"])
        path = dsn_path(self.layout, message_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for leftover in (path, self.layout.info(message_id)):
            with open(leftover, "wb") as f:
                f.write(b"half writ")
        self.start()
        found = read_dsn_file(self.layout, message_id)
        assert found is not None
        self.assertEqual(found.request("bob@mail.example"), RecipientDsn(("SUCCESS",)))
        self.assertFalse(os.path.exists(self.layout.todo(message_id)))

    def test_dsn_file_without_info_is_cleaned(self) -> None:
        from pymta.queue.cleaner import clean_queue

        path = dsn_path(self.layout, 12345)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"RFULL\0")
        clean_queue(self.layout, now=self.clock.seconds())
        self.assertFalse(os.path.exists(path))

    def test_notify_never_sends_no_bounce(self) -> None:
        self.local = RecordingChannel(lambda job, r: ("D", NO_MAILBOX))
        self.queue(MessageDsn(recipients=(RecipientDsn(("NEVER",)),)), ["nobody@mail.example"])
        self.start()
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.queue_files(), [])

    def test_notify_never_for_one_recipient_of_two(self) -> None:
        self.local = RecordingChannel(lambda job, r: ("D", NO_MAILBOX))
        self.queue(MessageDsn(recipients=(RecipientDsn(("NEVER",)), RecipientDsn(None, "rfc822;o@far.example"))),
                   ["a@mail.example", "b@mail.example"])
        self.start()
        [(sender, to, origin, data)] = self.sink.messages
        self.assertEqual((sender, to), ("", ["alice@far.example"]))
        report = report_of(data)
        self.assertEqual(report.get_content_type(), "multipart/report")  # a client that spoke DSN gets RFC 3464
        groups = report.get_payload()[1].get_payload()[1:]
        self.assertEqual([g["Final-Recipient"] for g in groups], ["rfc822; b@mail.example"])
        self.assertEqual(groups[0]["Original-Recipient"], "rfc822;o@far.example")
        self.assertEqual(groups[0]["Status"], "5.1.1")

    def test_notify_success_after_local_delivery(self) -> None:
        self.queue(MessageDsn(envid="E1", recipients=(RecipientDsn(("SUCCESS", "FAILURE")),)), ["bob@mail.example"])
        self.start()
        [(sender, to, origin, data)] = self.sink.messages
        self.assertEqual((sender, to), ("", ["alice@far.example"]))
        report = report_of(data)
        per_message, group = report.get_payload()[1].get_payload()
        self.assertEqual(per_message["Original-Envelope-Id"], "E1")
        self.assertEqual((group["Action"], group["Status"]), ("delivered", "2.0.0"))
        self.assertEqual(report.get_payload()[2].get_content_type(), "text/rfc822-headers")
        self.assertEqual(self.queue_files(), [])

    def test_notify_success_relayed_or_passed_on(self) -> None:
        answers = {"a@far.example": DeliveryResult("K", "ok\n"), "b@far.example": DeliveryResult("K", "ok\n", True)}

        class Remote(RecordingChannel):
            def deliver(self, job):  # type: ignore[no-untyped-def]
                from twisted.internet import defer
                self.jobs.append(job)
                return defer.succeed([answers[r] for r in job.recipients])

        self.remote = Remote(max_recipients=10)
        success = RecipientDsn(("SUCCESS",))
        self.queue(MessageDsn(recipients=(success, success)), ["a@far.example", "b@far.example"])
        self.start()
        [(_, _, _, data)] = self.sink.messages
        groups = report_of(data).get_payload()[1].get_payload()[1:]
        self.assertEqual([(g["Final-Recipient"], g["Action"]) for g in groups], [("rfc822; a@far.example", "relayed")])

    def test_no_success_notice_for_the_null_sender(self) -> None:
        self.queue(MessageDsn(recipients=(RecipientDsn(("SUCCESS",)),)), ["bob@mail.example"], sender="")
        self.start()
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.queue_files(), [])


class BounceFormatTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"locals": "mail.example\n", "bounceformat": "dsn\n"}

    def test_plain_message_bounces_in_rfc3464(self) -> None:
        self.local = RecordingChannel(lambda job, r: ("D", NO_MAILBOX))
        queue_message(self.layout, "alice@far.example", ["nobody@mail.example"])
        self.start()
        [(_, _, _, data)] = self.sink.messages
        report = report_of(data)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_payload()[2].get_content_type(), "message/rfc822")
        self.assertIn(b"hello", report.get_payload()[2].as_bytes())

    def test_double_bounce_stays_qsbmf(self) -> None:
        self.local = RecordingChannel(lambda job, r: ("D", NO_MAILBOX))
        queue_message(self.layout, "", ["nobody@mail.example"])
        self.start()
        [(sender, _, _, data)] = self.sink.messages
        self.assertEqual(sender, "#@[]")
        self.assertIn(b"\n\nHi. This is the", data)


class QsbmfDefaultTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"locals": "mail.example\n"}

    def test_plain_message_bounces_in_qsbmf(self) -> None:
        self.local = RecordingChannel(lambda job, r: ("D", NO_MAILBOX))
        queue_message(self.layout, "alice@far.example", ["nobody@mail.example"])
        self.start()
        [(_, _, _, data)] = self.sink.messages
        self.assertIn(b"\n\nHi. This is the pymta-send program", data)
        self.assertNotIn(b"multipart/report", data)
