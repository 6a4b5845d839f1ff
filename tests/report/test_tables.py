"""Tests for pymta.report.tally and pymta.report.tables: the numbers of every table, from a crafted log."""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.report import report
from pymta.report.tables import TABLES, table_name
from tests.report.test_matchup import log

# two senders; a (100 bytes) to b (success after a deferral) and c (failure); d (50 bytes) to b twice over
# two messages; a bounce; e's message is still queued at the end
LOG = log(
    (0, "new msg 1"),
    (0, "info msg 1: bytes 100 from <a@example.org> qp 1 uid 0"),
    (0, "starting delivery 1: msg 1 to local b@example.org"),
    (0, "starting delivery 2: msg 1 to remote c@example.net"),
    (2, "delivery 1: deferral: Sorry,_busy"),
    (3, "delivery 2: failure: Sorry,_no_mailbox"),
    (100, "starting delivery 3: msg 1 to local b@example.org"),
    (101, "delivery 3: success: did_1+0+0/"),
    (101, "bounce msg 1 qp 9"),
    (101, "end msg 1"),
    (200, "new msg 2"),
    (200, "info msg 2: bytes 50 from <d@example.org> qp 2 uid 0"),
    (200, "starting delivery 4: msg 2 to local b@example.org"),
    (205, "delivery 4: success: did_1+0+0/"),
    (205, "end msg 2"),
    (300, "new msg 3"),
    (300, "info msg 3: bytes 50 from <d@example.org> qp 3 uid 0"),
    (300, "starting delivery 5: msg 3 to local b@example.org"),
    (300, "delivery 5: success: did_1+0+0/"),
    (300, "end msg 3"),
    (400, "new msg 4"),
    (400, "info msg 4: bytes 70 from <e@example.org> qp 4 uid 0"),
    (400, "starting delivery 6: msg 4 to remote c@example.net"),
    (4000, "delivery 6: failure: Sorry,_no_mailbox"),
    (4000, "starting delivery 7: msg 4 to remote f@example.net"),
    (4001, "delivery 7: deferral: Sorry,_busy"),
    (4002, "starting delivery 8: msg 4 to remote g@example.net"),
    (4008, "delivery 8: deferral: timeout"),
)


def rows(text: str) -> dict[str, list[str]]:
    """A table's rows (after its title, explanation, blank line and column names) by their last column."""
    lines = text.splitlines()
    body = lines[lines.index("") + 2:]
    return {line.split()[-1]: line.split()[:-1] for line in body if line.strip()}


class OverallTests(SynchronousTestCase):
    def test_numbers(self) -> None:
        text = report(LOG, tables=("overall",))
        expected = {
            "Completed messages": "3",
            "Recipients for completed messages": "4",  # 1: b, c; 2: b; 3: b
            "Total delivery attempts for completed messages": "5",
            "Average delivery attempts per completed message": "1.67",
            "Bytes in completed messages": "200",
            "Bytes weighted by success": "200",  # 100 * 1 + 50 * 1 + 50 * 1
            "Average message qtime (s)": "35.33",  # (101 + 5 + 0) / 3
            "Maximum message qtime (s)": "101.00",
            "Total delivery attempts": "8",
            "  success": "3",
            "  failure": "2",
            "  deferral": "3",
            "Total ddelay (s)": "106.00",  # 101 + 5 + 0
            "Average ddelay per success (s)": "35.33",
            "Maximum ddelay (s)": "101.00",
            "Total xdelay (s)": "3618.00",  # 2 + 3 + 1 + 5 + 0 + 3600 + 1 + 6
            "Average xdelay per delivery attempt (s)": "452.25",
            "Maximum xdelay (s)": "3600.00",
            "Time span (days)": f"{4008 / 86400:.5f}",
            "Average concurrency": f"{3618 / 4008:.4f}",
            "Bounces queued": "1",
            "  delivery results without their start": "0",
            "  deliveries started without a result": "0",
            "  messages ended without their info line": "0",
            "  messages still in the queue at the end": "1",
        }
        got = dict(line.rsplit(": ", 1) for line in text.splitlines() if ": " in line)
        self.assertEqual({k: got.get(k) for k in expected}, expected)

    def test_empty_log(self) -> None:
        text = report([])
        self.assertIn("Completed messages: 0\n", text)
        self.assertIn("Average message qtime (s): -\n", text)
        self.assertIn("Average concurrency: -\n", text)
        self.assertEqual(text.count("(z"), len(TABLES))


class RankedTablesTests(SynchronousTestCase):
    def test_failures_and_deferrals(self) -> None:
        self.assertEqual(rows(report(LOG, tables=("failures",))), {"Sorry,_no_mailbox": ["2", "3603.00"]})
        deferrals = report(LOG, tables=("deferrals",))
        self.assertEqual(rows(deferrals), {"Sorry,_busy": ["2", "3.00"], "timeout": ["1", "6.00"]})
        # ranked by count: the reason given twice comes first
        self.assertLess(deferrals.index("Sorry,_busy"), deferrals.index("timeout"))

    def test_ctl_delete_and_bounce(self) -> None:
        ctl_log = log(
            (0, "new msg 10"),
            (0, "info msg 10: bytes 50 from <d@example.org> qp 2 uid 0"),
            (5, "delete msg 10 by ctl"),
            (5, "end msg 10"),
            (10, "new msg 11"),
            (10, "info msg 11: bytes 50 from <d@example.org> qp 3 uid 0"),
            (20, "bounce msg 11 by ctl: bounced by the postmaster"),
            (20, "bounce msg 11 qp 4"),
            (20, "end msg 11"),
        )
        text = report(ctl_log, tables=("overall", "failures"))
        self.assertIn("Completed messages: 1\n", text)
        self.assertIn("Messages deleted by pymta ctl delete (not completed): 1\n", text)
        self.assertRegex(text, r"\n +1 +0\.00 +bounced by ctl: bounced by the postmaster\n")

    def test_recipients(self) -> None:
        self.assertEqual(rows(report(LOG, tables=("recipients",))), {
            # sbytes mess tries xdelay
            "local.b@example.org": ["200", "3", "4", "8.00"],
            "remote.c@example.net": ["0", "0", "2", "3603.00"],
            "remote.f@example.net": ["0", "0", "1", "1.00"],
            "remote.g@example.net": ["0", "0", "1", "6.00"],
        })

    def test_senders(self) -> None:
        self.assertEqual(rows(report(LOG, tables=("senders",))), {
            # mess bytes sbytes rbytes recips tries xdelay
            "<d@example.org>": ["2", "100", "100", "100", "2", "2", "5.00"],
            "<a@example.org>": ["1", "100", "100", "200", "2", "3", "6.00"],
            "<e@example.org>": ["0", "0", "0", "0", "0", "3", "3607.00"],
        })

    def test_top(self) -> None:
        text = report(LOG, tables=("recipients",), top=2)
        self.assertEqual(list(rows(text)), ["local.b@example.org", "remote.c@example.net", "(--top)"])
        self.assertIn("... and 2 more (--top)", text)


class DdistTests(SynchronousTestCase):
    def test_distribution(self) -> None:
        text = report(LOG, tables=("ddist",))
        # ddelays: 0 and 5 and 101 s
        lines = text.splitlines()
        self.assertEqual(lines[lines.index("") + 1].split(), ["within", "del", "cumul", "cumul%"])
        self.assertEqual([line.split() for line in lines[lines.index("") + 2:]], [
            ["1s", "1", "1", "33.33"],
            ["2s", "0", "1", "33.33"],
            ["5s", "1", "2", "66.67"],
            ["10s", "0", "2", "66.67"],
            ["30s", "0", "2", "66.67"],
            ["1m", "0", "2", "66.67"],
            ["2m", "1", "3", "100.00"],
        ])

    def test_beyond_the_last_row(self) -> None:
        long = log((0, "new msg 1"), (0, "info msg 1: bytes 1 from <a@b> qp 1 uid 0"),
                   (9 * 86400, "starting delivery 1: msg 1 to local x@y"), (9 * 86400, "delivery 1: success: ok"))
        last = report(long, tables=("ddist",)).splitlines()[-1].split()
        self.assertEqual(last, ["more", "1", "1", "100.00"])


class NamesTests(SynchronousTestCase):
    def test_qmailanalog_names(self) -> None:
        self.assertEqual([table_name(n) for n in ("zoverall", "ZSENDERS", "ddist", "zz", "nope")],
                         ["overall", "senders", "ddist", None, None])

    def test_every_table_in_order(self) -> None:
        titles = re.findall(r"\(z(\w+)\)", report(LOG))
        self.assertEqual(titles, list(TABLES))
