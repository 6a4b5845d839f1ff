"""Tests for pymta.qmailhelpers.preline, through the installed script as a .qmail line runs it."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.qmailhelpers.common import Fatal
from pymta.qmailhelpers.preline import PrelineOptions, parse_arguments, prepended
from tests.qmailhelpers.helpers import DELIVERY_ENV, MESSAGE, helper_environment, run_line

UF = DELIVERY_ENV["UFLINE"].encode()
RP = DELIVERY_ENV["RPLINE"].encode()
DT = DELIVERY_ENV["DTLINE"].encode()
ENVB = {k.encode(): v.encode() for k, v in DELIVERY_ENV.items()}


class ArgumentTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(parse_arguments(["procmail", "-m", "rc"]), PrelineOptions(True, True, True, ("procmail", "-m", "rc")))

    def test_leave_out_and_put_back(self) -> None:
        self.assertEqual(parse_arguments(["-f", "-dr", "cat"]), PrelineOptions(False, False, False, ("cat",)))
        self.assertEqual(parse_arguments(["-fdF", "cat"]), PrelineOptions(True, True, False, ("cat",)))
        self.assertEqual(parse_arguments(["-R", "-r", "cat"]), PrelineOptions(True, False, True, ("cat",)))

    def test_options_end(self) -> None:
        self.assertEqual(parse_arguments(["--", "-f"]).program, ("-f",))
        self.assertEqual(parse_arguments(["cat", "-f"]).program, ("cat", "-f"))

    def test_usage(self) -> None:
        for argv in ([], ["-f"], ["-x", "cat"], ["--"]):
            e = self.assertRaises(Fatal, parse_arguments, argv)
            self.assertEqual(e.code, 100, argv)
            self.assertEqual(e.text, "usage: preline [ -frdFRD ] cmd [ arg ... ]")

    def test_prepended(self) -> None:
        self.assertEqual(prepended(parse_arguments(["cat"]), ENVB), UF + RP + DT)
        self.assertEqual(prepended(parse_arguments(["-r", "cat"]), ENVB), UF + DT)

    def test_missing_variable_is_usage_error(self) -> None:
        env = dict(ENVB)
        del env[b"RPLINE"]
        # even when the line would be left out, as qmail's preline does
        e = self.assertRaises(Fatal, prepended, parse_arguments(["-r", "cat"]), env)
        self.assertEqual(e.code, 100)


class PrelineProgramTests(unittest.SynchronousTestCase):
    def test_lines_then_message(self) -> None:
        code, output = run_line("preline cat")
        self.assertEqual((code, output.encode()), (0, UF + RP + DT + MESSAGE))

    def test_options(self) -> None:
        self.assertEqual(run_line("preline -f cat")[1].encode(), RP + DT + MESSAGE)
        self.assertEqual(run_line("preline -frd cat")[1].encode(), MESSAGE)
        self.assertEqual(run_line("preline -d -r cat")[1].encode(), UF + MESSAGE)

    def test_exit_code_is_the_programs(self) -> None:
        for status in (0, 99, 100, 111, 3):
            code, _ = run_line(f"preline sh -c 'cat >/dev/null; exit {status}'")
            self.assertEqual(code, status)

    def test_large_message(self) -> None:
        body = b"Subject: big\n\n" + b"x" * 79 + b"\n" * 1 + (b"y" * 99 + b"\n") * 20000
        code, output = run_line("preline wc -c", message=body)
        self.assertEqual((code, int(output.strip())), (0, len(UF + RP + DT) + len(body)))

    def test_outside_a_delivery(self) -> None:
        code, output = run_line("preline cat", env=helper_environment(delivery=False))
        self.assertEqual((code, output), (100, "preline: fatal: usage: preline [ -frdFRD ] cmd [ arg ... ]\n"))

    def test_missing_program(self) -> None:
        code, output = run_line("preline /nonexistent/procmail")
        self.assertEqual(code, 100)
        self.assertEqual(output, "preline: fatal: unable to run /nonexistent/procmail: no such file or directory\n")

    def test_program_that_stops_reading(self) -> None:
        body = b"Subject: big\n\n" + b"z" * 2_000_000 + b"\n"
        code, output = run_line("preline true", message=body)
        self.assertEqual((code, output), (111, "preline: fatal: unable to copy input: broken pipe\n"))

    def test_killed_program(self) -> None:
        code, output = run_line("preline sh -c 'cat >/dev/null; kill -KILL $$'")
        self.assertEqual((code, output), (111, "preline: fatal: child crashed\n"))
