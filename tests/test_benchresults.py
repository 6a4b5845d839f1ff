"""
benchmarks/results.py: the RESULT line every issue-19 benchmark prints, and
the table benchmarks/ahead_of_postfix.py makes of them.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.append(BENCHMARKS)  # after everything else: its flat module names shadow nothing

import ahead_of_postfix  # noqa: E402
from results import format_result, parse_result, result_line, results_in, table  # noqa: E402


class ResultLineTests(SynchronousTestCase):
    def test_rate_ratio_is_pymta_over_postfix(self) -> None:
        r = result_line("20sessions", "delivered_per_s", 650.0, 500.0, goal="1.3")
        self.assertAlmostEqual(r.ratio, 1.3)
        self.assertEqual(r.met, "yes")
        self.assertEqual(format_result(r),
                         "RESULT 20sessions delivered_per_s pymta=650 postfix=500 ratio=1.3 goal=1.3 met=yes")

    def test_time_ratio_is_postfix_over_pymta(self) -> None:
        r = result_line("1session", "p50_ms", 2.0, 1.0, higher_is_better=False, goal="1.0")
        self.assertEqual(r.ratio, 0.5)
        self.assertEqual(r.met, "no")

    def test_absolute_goal_is_on_pymtas_own_figure(self) -> None:
        self.assertEqual(result_line("q", "bytes", 250.0, 30.0, higher_is_better=False, goal="pymta<=300").met, "yes")
        self.assertEqual(result_line("q", "bytes", 301.0, 30.0, higher_is_better=False, goal="pymta<=300").met, "no")

    def test_missing_values(self) -> None:
        r = result_line("scheduler1000", "retry_us_per_msg", 300.0, None, higher_is_better=False, goal="1.0")
        self.assertEqual((r.ratio, r.met), (None, "-"))
        self.assertIn(" postfix=- ratio=- goal=1.0 met=-", format_result(r))

    def test_no_ratio_of_values_at_or_below_zero(self) -> None:
        self.assertIsNone(result_line("q", "bytes", -16.0, 33.0, higher_is_better=False).ratio)
        self.assertIsNone(result_line("q", "rate", 5.0, 0.0).ratio)

    def test_words_only(self) -> None:
        self.assertRaises(ValueError, result_line, "20 sessions", "x", 1.0, 1.0)
        self.assertRaises(ValueError, result_line, "load", "a=b", 1.0, 1.0)
        self.assertRaises(ValueError, result_line, "load", "x", 1.0, 1.0, goal="fast")


class ParseTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        r = result_line("local1000", "last_delivery_s", 0.72, 1.17, higher_is_better=False, goal="1.0")
        again = parse_result(format_result(r))
        self.assertEqual((again.load, again.metric, again.goal, again.met), ("local1000", "last_delivery_s", "1.0", "yes"))
        self.assertAlmostEqual(again.pymta, 0.72)
        self.assertAlmostEqual(again.ratio, 1.17 / 0.72, places=3)

    def test_refuses_other_lines(self) -> None:
        for line in ("RESULT a b pymta=1 postfix=1 ratio=1 goal=-", "RESULT a b pymta=1 postfix=1 ratio=1 goal=- met=maybe",
                     "RESULT a b postfix=1 pymta=1 ratio=1 goal=- met=-", "round 1 pymta accepted 500 msg/s"):
            self.assertRaises(ValueError, parse_result, line)

    def test_results_in_output_skips_other_lines(self) -> None:
        out = ("smtp-source -s 20 ...\nround 1 pymta accepted 650\n"
               "RESULT 20sessions accepted_per_s pymta=650 postfix=1000 ratio=0.65 goal=1.0 met=no\n"
               "  ratio pymta/postfix: 0.65\n"
               "RESULT 20sessions delivered_per_s pymta=650 postfix=500 ratio=1.3 goal=1.3 met=yes\n")
        self.assertEqual([(r.metric, r.met) for r in results_in(out)],
                         [("accepted_per_s", "no"), ("delivered_per_s", "yes")])


class TableTests(SynchronousTestCase):
    def test_one_row_per_result_and_the_goals_met(self) -> None:
        rows = [result_line("20sessions", "delivered_per_s", 650.0, 500.0, goal="1.3"),
                result_line("1session", "p99_ms", 2.0, 1.0, higher_is_better=False, goal="1.0"),
                result_line("scheduler1000", "retry_calls_per_msg", 468.0, None)]
        lines = table(rows).splitlines()
        self.assertEqual(lines[0].split(), ["load", "metric", "pymta", "Postfix", "ratio", "goal", "met"])
        self.assertEqual(lines[1].split(), ["20sessions", "delivered_per_s", "650", "500", "1.3", "1.3", "yes"])
        self.assertEqual(lines[2].split(), ["1session", "p99_ms", "2", "1", "0.5", "1.0", "no"])
        self.assertEqual(lines[3].split(), ["scheduler1000", "retry_calls_per_msg", "468", "-", "-", "-", "-"])
        self.assertEqual(lines[4], "goals met: 1 of 2")


class DriverTests(SynchronousTestCase):
    def test_run_passes_output_through_and_collects_results(self) -> None:
        line = format_result(result_line("x", "y", 2.0, 1.0, goal="1.0"))
        out = io.StringIO()
        with redirect_stdout(out):
            status, found = ahead_of_postfix.run([sys.executable, "-c", f"print('hello'); print({line!r}); exit(3)"])
        self.assertEqual(status, 3)
        self.assertEqual(found, [parse_result(line)])
        self.assertIn("  hello\n", out.getvalue())

    def test_quick_and_passed_on_options(self) -> None:
        argv = ahead_of_postfix.command("deferring", True, {"--rounds": "2", "--settle-us": "60"})
        assert argv is not None
        self.assertEqual(argv[2:], ["--count", "500", "--rounds", "2", "--settle-us", "60"])
        argv = ahead_of_postfix.command("bigqueue", False, {"--rounds": "2"})
        assert argv is not None
        self.assertEqual(argv[2:], ["-n", "100000", "--sizes", "1000,10000,100000"])  # it takes no --rounds

    def test_a_missing_script_is_not_run(self) -> None:
        self.patch(ahead_of_postfix, "LOADS", {"gone": ("no_such_benchmark.py", [], [])})
        self.assertIsNone(ahead_of_postfix.command("gone", True, {}))

    def test_the_loads_of_the_issue(self) -> None:
        self.assertEqual(set(ahead_of_postfix.LOADS), {"20sessions", "1session", "sessions", "bigmsg", "local",
                                                       "remote", "deferring", "bigqueue"})
