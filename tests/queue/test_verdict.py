"""Tests for pymta.queue.verdict: judging one recipient's delivery result as qmail-send does."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.interfaces import DeliveryResult
from pymta.queue.retry import DYING_TEXT
from pymta.queue.verdict import REPORT_MAX, Verdict, judge


class JudgeTests(unittest.TestCase):
    def test_results_are_kept_as_reported(self) -> None:
        for status, stat in (("K", "delivered"), ("Z", "deferred"), ("D", "failed")):
            verdict = judge(DeliveryResult(status, "text\n"), dying=False)
            self.assertEqual((verdict, verdict.stat), (Verdict(status, "text\n"), stat))

    def test_a_dying_message_fails_instead_of_deferring(self) -> None:
        self.assertEqual(judge(DeliveryResult("Z", "busy"), dying=True), Verdict("D", "busy\n" + DYING_TEXT))
        self.assertEqual(judge(DeliveryResult("K", "ok"), dying=True), Verdict("K", "ok"))

    def test_mangled_reports_defer(self) -> None:
        for result in (None, DeliveryResult("X", "?"), DeliveryResult("K", None)):  # type: ignore[arg-type]
            verdict = judge(result, dying=True)
            self.assertEqual((verdict, verdict.stat), (Verdict(None, ""), "deferred"))

    def test_long_reports_are_cut(self) -> None:
        self.assertEqual(len(judge(DeliveryResult("D", "x" * (REPORT_MAX + 5)), dying=False).text), REPORT_MAX)
