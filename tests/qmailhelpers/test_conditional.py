"""Tests for condredirect, bouncesaying and except: qmail's exit-code contracts, through the installed scripts."""

from __future__ import annotations

from twisted.trial import unittest

from tests.qmailhelpers.helpers import MESSAGE, run_line
from tests.qmailhelpers.test_forward import QueueFixture


class CondredirectTests(QueueFixture):
    def test_program_success_forwards_from_sender_and_stops(self) -> None:
        # the program reads the message first: condredirect rewinds before queueing it
        code, output = run_line("condredirect bob@example.net grep -q '^Subject: hello'",
                                env=self.env(NEWSENDER="joe-owner@example.org"))
        self.assertEqual(code, 99)
        self.assertRegex(output, r"^condredirect: qp \d+\n$")
        self.assertEqual(self.queued(), [("alice@example.com", ("bob@example.net",),
                                          b"Delivered-To: joe-x@example.org\n" + MESSAGE)])

    def test_program_failure_continues(self) -> None:
        for status in (1, 100, 99):
            self.assertEqual(run_line(f"condredirect bob@example.net sh -c 'exit {status}'", env=self.env()), (0, ""))
        self.assertEqual(self.queued(), [])

    def test_temporary_program_failure(self) -> None:
        self.assertEqual(run_line("condredirect bob@example.net sh -c 'exit 111'", env=self.env()),
                         (111, "condredirect: fatal: temporary child error\n"))
        self.assertEqual(run_line("condredirect bob@example.net sh -c 'kill -KILL $$'", env=self.env()),
                         (111, "condredirect: fatal: child crashed\n"))

    def test_missing_program_continues(self) -> None:
        self.assertEqual(run_line("condredirect bob@example.net /nonexistent/filter", env=self.env()), (0, ""))

    def test_usage(self) -> None:
        usage = (100, "condredirect: fatal: usage: condredirect newaddress program [ arg ... ]\n")
        self.assertEqual(run_line("condredirect", env=self.env()), usage)
        self.assertEqual(run_line("condredirect bob@example.net", env=self.env()), usage)

    def test_sender_not_set(self) -> None:
        env = self.env()
        del env["SENDER"]
        self.assertEqual(run_line("condredirect bob@example.net true", env=env), (100, "condredirect: fatal: SENDER not set\n"))

    def test_queue_refusal(self) -> None:
        code, output = run_line("condredirect " + "b" * 2000 + "@example.net true", env=self.env())
        self.assertEqual((code, output), (100, "condredirect: fatal: envelope address too long for qq (#5.1.3)\n"))


class BouncesayingTests(unittest.SynchronousTestCase):
    def test_always(self) -> None:
        self.assertEqual(run_line("bouncesaying 'This address is no longer in use.'"),
                         (100, "This address is no longer in use.\n"))

    def test_with_program(self) -> None:
        self.assertEqual(run_line("bouncesaying 'No hellos here.' grep -q '^Subject: hello'"), (100, "No hellos here.\n"))
        self.assertEqual(run_line("bouncesaying 'No spam here.' grep -q '^Subject: spam'"), (0, ""))
        self.assertEqual(run_line("bouncesaying 'x' sh -c 'exit 100'"), (0, ""))
        self.assertEqual(run_line("bouncesaying 'x' sh -c 'exit 111'"), (111, "bouncesaying: fatal: temporary child error\n"))
        self.assertEqual(run_line("bouncesaying 'x' /nonexistent/filter"), (0, ""))

    def test_usage(self) -> None:
        self.assertEqual(run_line("bouncesaying"),
                         (100, "bouncesaying: fatal: usage: bouncesaying error [ program [ arg ... ] ]\n"))


class ExceptTests(unittest.SynchronousTestCase):
    def test_inverts(self) -> None:
        self.assertEqual(run_line("except true"), (100, ""))
        self.assertEqual(run_line("except false"), (0, ""))
        self.assertEqual(run_line("except sh -c 'exit 100'"), (0, ""))
        self.assertEqual(run_line("except sh -c 'exit 99'"), (0, ""))
        self.assertEqual(run_line("except sh -c 'exit 111'"), (111, "except: fatal: temporary child error\n"))
        self.assertEqual(run_line("except sh -c 'kill -KILL $$'"), (111, "except: fatal: child crashed\n"))

    def test_program_output_and_message_pass_through(self) -> None:
        self.assertEqual(run_line("except sh -c 'grep ^Subject; exit 0'"), (100, "Subject: hello\n"))

    def test_usage(self) -> None:
        self.assertEqual(run_line("except"), (100, "except: fatal: usage: except program [ arg ... ]\n"))
