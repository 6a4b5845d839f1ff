"""The typed records between pymta-send, the local spawner and its delivery children."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.local.childrecords import encode_delivery, encode_outcome, parse_delivery, parse_outcome
from pymta.local.deliver import LocalDelivery, LocalOutcome
from pymta.local.getpw import LocalUser
from pymta.local.spawnrecords import (
    OUTPUT_CAP,
    BadRequest,
    DeliveryCounts,
    DeliveryReport,
    DeliveryRequest,
    RecordError,
    SpawnerHello,
    parse_spawner_record,
)
from pymta.local.wire import RecordReader

texts = st.text(max_size=40)


def decoded(data: bytes) -> dict:
    [record] = RecordReader().feed(data)
    return record


class SpawnRecordTests(unittest.SynchronousTestCase):
    @given(st.integers(0, 2**40), texts, texts, texts, texts)
    def test_request_round_trip(self, slot, message, sender, recipient, defaultdelivery) -> None:
        request = DeliveryRequest(slot, message, sender, recipient, defaultdelivery)
        self.assertEqual(DeliveryRequest.parse(decoded(request.encode())), request)

    def test_bad_requests_name_what_is_wrong(self) -> None:
        e = self.assertRaises(BadRequest, DeliveryRequest.parse, {"slot": "x"})
        self.assertIsNone(e.slot)
        e = self.assertRaises(BadRequest, DeliveryRequest.parse, {"slot": 4, "message": "m", "sender": "", "recipient": "r"})
        self.assertEqual((e.slot, e.text), (4, "Internal error: request has no defaultdelivery. (#5.3.0)"))
        e = self.assertRaises(BadRequest, DeliveryRequest.parse,
                              {"slot": 4, "message": "m" * 5000, "sender": "", "recipient": "r", "defaultdelivery": ""})
        self.assertIn("message is too long", e.text)

    def test_hello_and_reports(self) -> None:
        hello = SpawnerHello(77, 0)
        self.assertEqual(parse_spawner_record(decoded(hello.encode())), hello)
        report = DeliveryReport.report(3, "K", "out\n", DeliveryCounts(1, 2, 3), ("a@b",), "s@t", 4242)
        self.assertEqual(parse_spawner_record(decoded(report.encode())), report)
        self.assertEqual(report.text(), "out\ndid 1+2+3\n")
        deferral = DeliveryReport.report(4, "Z", "later", DeliveryCounts(1, 0, 0), ("x@y",), needs_root=True)
        self.assertEqual((deferral.did, deferral.forwards, deferral.text()), (None, (), "later"))
        self.assertEqual(parse_spawner_record(decoded(deferral.encode())), deferral)

    def test_output_capped(self) -> None:
        report = DeliveryReport.report(1, "D", "é" * 4000)
        self.assertLessEqual(len(report.output.encode()), OUTPUT_CAP)
        self.assertTrue(report.output.endswith("\nError report too long, sorry.\n"))
        self.assertRaises(RecordError, DeliveryReport(1, "D", "x" * (OUTPUT_CAP + 1)).encode)

    def test_malformed_reports_refused(self) -> None:
        good = decoded(DeliveryReport.report(3, "K", "", DeliveryCounts(1, 0, 0)).encode())
        for change in ({"status": "Q"}, {"did": [1, 0]}, {"did": None}, {"slot": -1}, {"output": 5},
                       {"forwards": "a@b"}, {"needsroot": 1}, {"uid": "0"}, {"hello": 2}):
            with self.subTest(change=change):
                self.assertRaises(RecordError, parse_spawner_record, {**good, **change})
        self.assertRaises(RecordError, parse_spawner_record, {**good, "status": "D", "needsroot": True})


class ChildRecordTests(unittest.SynchronousTestCase):
    def test_delivery_round_trip_names_the_user_fields(self) -> None:
        user = LocalUser("joe", 4242, 4343, "/home/joe", "-", "x", "assign")
        delivery = LocalDelivery("a@b", "joe-x", "example.org", user, "./Maildir/\n")
        line = encode_delivery(delivery)
        self.assertIn(b'"uid": 4242', line)
        self.assertEqual(parse_delivery(line.rstrip(b"\n")), delivery)
        self.assertRaises(RecordError, parse_delivery, line.replace(b'"uid": 4242', b'"uid": -1'))
        self.assertRaises(RecordError, parse_delivery, b"[1, 2]")

    def test_outcome_round_trip_and_garbage(self) -> None:
        outcome = LocalOutcome("K", "hi\n", DeliveryCounts(0, 1, 1), ["a@b"], "n@s")
        self.assertEqual(parse_outcome(encode_outcome(outcome)), outcome)
        self.assertEqual(parse_outcome(encode_outcome(outcome)).report_text(), "hi\ndid 0+1+1\n")
        for line in (b"", b"{", b'{"status": "K"}', b'{"status": "K", "output": "", "did": [1], "forwards": [], "newsender": ""}',
                     b'{"status": "X", "output": "", "did": null, "forwards": [], "newsender": ""}'):
            with self.subTest(line=line):
                self.assertRaises(RecordError, parse_outcome, line)
