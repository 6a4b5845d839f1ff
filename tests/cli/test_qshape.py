"""Tests for pymta.cli.qshape (and its queue-state seam pymta.cli.queuestate), on queues the real writer built."""

from __future__ import annotations

import io
import os
import sys

from twisted.trial import unittest

from pymta.cli import qshape, queuestate
from tests.cli.queuefiles import QueueFiles

NOW = 1795643389.0  # a fixed "now"
MINUTE = 60.0


class BucketTests(unittest.SynchronousTestCase):
    def test_half_open_columns_as_postfix(self) -> None:
        """An age counts in the first column whose limit it is below (Postfix's qshape: age < limit)."""
        self.assertEqual(qshape.bucket(0), 0)
        self.assertEqual(qshape.bucket(5 * MINUTE - 1), 0)
        self.assertEqual(qshape.bucket(5 * MINUTE), 1)
        self.assertEqual(qshape.bucket(1280 * MINUTE - 1), 8)
        self.assertEqual(qshape.bucket(1280 * MINUTE), 9)

    def test_columns_agree_with_the_metric(self) -> None:
        from pymta.metrics.queue import age_column
        for seconds in (0, 1, 299, 300, 301, 599, 600, 40 * MINUTE, 1279 * MINUTE, 1280 * MINUTE, 10**7):
            self.assertEqual(age_column(seconds), ["0-5", "5-10", "10-20", "20-40", "40-80", "80-160", "160-320",
                                                   "320-640", "640-1280", "1280+"][qshape.bucket(seconds)], seconds)

    def test_domain_of(self) -> None:
        self.assertEqual(qshape.domain_of(b"Bob@Other.EXAMPLE"), "other.example")
        self.assertEqual(qshape.domain_of(b"odd@user@x.example"), "x.example")
        self.assertEqual(qshape.domain_of(b""), "MAILER-DAEMON")
        self.assertEqual(qshape.domain_of(b"#@[]"), "[]")


class QshapeTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.files = QueueFiles(self.mktemp())
        f = self.files
        # two hours old: two recipients at dead.example, one at other.example already delivered
        self.old = f.add("a@corp.example", ["x@dead.example", "y@dead.example", "z@other.example"], NOW - 120 * MINUTE)
        f.mark_done(self.old, "remote", "z@other.example")
        # a day old, a bounce: one recipient at dead.example, one local
        f.add("", ["w@dead.example", "postmaster@mail.example"], NOW - 1440 * MINUTE)
        # just arrived, not yet preprocessed (todo/ only), born "now"
        self.fresh = f.commit("b@corp.example", ["v@other.example"])
        os.utime(f.layout.todo(self.fresh), (NOW - 30, NOW - 30))

    def run_main(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        return qshape.main(["--root", self.files.root, *args], now=NOW, out=out), out.getvalue()

    def test_recipients_by_domain_in_postfix_layout(self) -> None:
        self.assertEqual(self.run_main(), (0, (
            "              T 5 10 20 40 80 160 320 640 1280 1280+\n"
            "        TOTAL 5 1  0  0  0  0   2   0   0    0     2\n"
            " dead.example 3 0  0  0  0  0   2   0   0    0     1\n"
            " mail.example 1 0  0  0  0  0   0   0   0    0     1\n"
            "other.example 1 1  0  0  0  0   0   0   0    0     0\n"
        )))

    def test_senders_count_messages(self) -> None:
        self.assertEqual(self.run_main("--by", "sender")[1], (
            "              T 5 10 20 40 80 160 320 640 1280 1280+\n"
            "        TOTAL 3 1  0  0  0  0   1   0   0    0     1\n"
            " corp.example 2 1  0  0  0  0   1   0   0    0     0\n"
            "MAILER-DAEMON 1 0  0  0  0  0   0   0   0    0     1\n"
        ))

    def test_deferred_leaves_out_what_is_not_preprocessed(self) -> None:
        code, out = self.run_main("--queue", "deferred", "--top", "1")
        self.assertEqual(out, (
            "             T 5 10 20 40 80 160 320 640 1280 1280+\n"
            "       TOTAL 4 0  0  0  0  0   2   0   0    0     2\n"
            "dead.example 3 0  0  0  0  0   2   0   0    0     1\n"
        ))

    def test_held_goes_by_the_seam(self) -> None:
        self.assertEqual(self.run_main("--queue", "held")[1].splitlines()[1].split(), ["TOTAL"] + ["0"] * 11)
        held = self.old
        self.patch(qshape, "state_of",
                   lambda layout, mid: queuestate.HELD if mid == held else queuestate.DEFERRED)
        self.assertEqual(self.run_main("--queue", "held")[1].splitlines()[1:],
                         ["       TOTAL 2 0  0  0  0  0   2   0   0    0     0",
                          "dead.example 2 0  0  0  0  0   2   0   0    0     0"])
        # the held message is no longer among the deferred: only the day-old bounce's two recipients
        self.assertEqual(self.run_main("--queue", "deferred")[1].splitlines()[1].split(),
                         ["TOTAL", "2"] + ["0"] * 9 + ["2"])

    def test_held_on_disk(self) -> None:
        """A message with hold/ID (pymta ctl hold) is held, not deferred."""
        layout = self.files.layout
        os.makedirs(layout.dir("hold"), exist_ok=True)
        with open(layout.hold(self.old), "w"):
            pass
        self.assertEqual(queuestate.state_of(layout, self.old), queuestate.HELD)
        self.assertEqual(self.run_main("--queue", "held")[1].splitlines()[1:],
                         ["       TOTAL 2 0  0  0  0  0   2   0   0    0     0",
                          "dead.example 2 0  0  0  0  0   2   0   0    0     0"])

    def test_top_and_ties_by_name(self) -> None:
        f = self.files
        for name in ("b.example", "a.example"):
            f.add("s@corp.example", [f"r@{name}"], NOW)
        lines = self.run_main("--top", "0")[1].splitlines()
        self.assertEqual([line.split()[0] for line in lines[2:]],
                         ["dead.example", "a.example", "b.example", "mail.example", "other.example"])

    def test_a_message_gone_meanwhile_is_skipped(self) -> None:
        os.unlink(self.files.layout.info(self.old))
        self.assertEqual(self.run_main()[1].splitlines()[1].split()[:2], ["TOTAL", "3"])

    def test_a_message_preprocessed_between_the_listings_counts_once(self) -> None:
        real = qshape.message_ids

        def preprocessed_meanwhile(layout):
            self.files.preprocess([self.fresh], NOW - 30)
            self.assertFalse(os.path.exists(self.files.layout.todo(self.fresh)))
            return real(layout)

        self.patch(qshape, "message_ids", preprocessed_meanwhile)
        self.assertEqual(self.run_main("--queue", "all")[1].splitlines()[1].split()[:2], ["TOTAL", "5"])

    def test_empty_and_missing_queue(self) -> None:
        empty = QueueFiles(self.mktemp())
        out = io.StringIO()
        self.assertEqual(qshape.main(["--root", empty.root], now=NOW, out=out), 0)
        self.assertEqual(out.getvalue().splitlines()[1].split(), ["TOTAL"] + ["0"] * 11)
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(qshape.main(["--root", self.mktemp()], now=NOW, out=io.StringIO()), 111)
        self.assertIn("pymta qshape: fatal: unable to read", err.getvalue())
