"""JunkCounter: which commands count as making no progress, and when a session is over the limit."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.junk import JUNK_COMMAND_LIMIT, JunkCounter


class Counting(SynchronousTestCase):
    def test_noop_over_the_limit(self) -> None:
        counter = JunkCounter()
        self.assertEqual([counter.command("noop", True) for _ in range(JUNK_COMMAND_LIMIT)], [False] * 100)
        self.assertTrue(counter.command("noop", True))

    def test_each_junk_verb_counts(self) -> None:
        counter = JunkCounter(limit=4)
        for verb in ("noop", "rset", "vrfy", "expn", "help"):
            over = counter.command(verb, verb != "expn")
        self.assertEqual(counter.junk, 5)
        self.assertTrue(over)

    def test_unknown_commands_count(self) -> None:
        counter = JunkCounter(limit=2)
        self.assertEqual([counter.command("xyzzy", False) for _ in range(3)], [False, False, True])

    def test_first_helo_and_mail_are_progress_repeats_are_not(self) -> None:
        counter = JunkCounter(limit=10)
        for verb in ("ehlo", "mail", "rcpt", "data"):
            counter.command(verb, True)
        self.assertEqual(counter.junk, 0)
        for verb in ("helo", "ehlo", "mail"):
            counter.command(verb, True)
        self.assertEqual(counter.junk, 3)

    def test_recipients_beyond_the_limit_count(self) -> None:
        counter = JunkCounter(limit=10, free_recipients=3)
        for _ in range(5):
            counter.command("rcpt", True)
        self.assertEqual(counter.junk, 2)

    def test_an_accepted_message_starts_the_count_again(self) -> None:
        counter = JunkCounter(limit=3)
        for verb in ("ehlo", "noop", "noop", "noop", "mail", "rcpt", "data"):
            self.assertFalse(counter.command(verb, True))
        counter.message_accepted()
        self.assertEqual(counter.junk, 0)
        for verb in ("rset", "mail", "rcpt", "data"):
            self.assertFalse(counter.command(verb, True))
        self.assertEqual(counter.junk, 1)
