"""Tests for pymta.report.when: the times --since and --until accept."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial.unittest import SynchronousTestCase

from pymta.report.when import parse_when

NOW = 1_800_000_000.0


class ParseWhenTests(SynchronousTestCase):
    def test_iso(self) -> None:
        utc = datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc).timestamp()
        self.assertEqual(parse_when("2026-05-01T12:00:00+0200", NOW), utc)
        self.assertEqual(parse_when("2026-05-01T10:00Z", NOW), utc)
        self.assertEqual(parse_when("2026-05-01 10:00+00:00", NOW), utc)
        # without a zone: local time, as the log's own stamps are
        self.assertEqual(parse_when("2026-05-01", NOW), datetime(2026, 5, 1).timestamp())

    def test_ages_and_seconds(self) -> None:
        self.assertEqual([parse_when(t, NOW) for t in ("90s", "30m", "12h", "7d", "2w", "@12.5")],
                         [NOW - 90, NOW - 1800, NOW - 43200, NOW - 7 * 86400, NOW - 14 * 86400, 12.5])

    def test_not_a_time(self) -> None:
        for text in ("yesterday", "7y", "@soon", "2026-13-01", ""):
            with self.assertRaises(ValueError) as caught:
                parse_when(text, NOW)
            self.assertIn("is not a time", str(caught.exception))
