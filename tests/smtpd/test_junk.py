"""JunkCounter: every command counts unless it makes progress, and when a session is over the limit."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.junk import JUNK_COMMAND_LIMIT, JunkCounter


class Counting(SynchronousTestCase):
    def test_over_the_limit_the_next_command_is_refused(self) -> None:
        counter = JunkCounter()
        self.assertEqual([counter.command() for _ in range(JUNK_COMMAND_LIMIT)], [False] * 100)
        self.assertEqual(counter.junk, 100)
        self.assertTrue(counter.command())

    def test_a_command_without_progress_counts(self) -> None:
        counter = JunkCounter(limit=2)
        self.assertEqual([counter.command() for _ in range(3)], [False, False, True])

    def test_progress_takes_back_only_the_current_command(self) -> None:
        counter = JunkCounter(limit=10)
        counter.command()
        counter.command()
        counter.progress()
        counter.progress()  # a second call for the same command changes nothing
        self.assertEqual(counter.junk, 1)

    def test_first_greeting_is_progress_repeats_are_not(self) -> None:
        counter = JunkCounter(limit=10)
        for _ in range(3):
            counter.command()
            counter.greeted()
        self.assertEqual(counter.junk, 2)

    def test_tls_started_is_progress_and_allows_a_new_greeting(self) -> None:
        counter = JunkCounter(limit=10)
        counter.command()
        counter.greeted()
        counter.command()
        counter.tls_started()
        counter.command()
        counter.greeted()
        self.assertEqual(counter.junk, 0)
        counter.command()
        counter.greeted()
        self.assertEqual(counter.junk, 1)

    def test_recipients_beyond_the_limit_count(self) -> None:
        counter = JunkCounter(limit=10, free_recipients=3)
        for _ in range(5):
            counter.command()
            counter.recipient_accepted()
        self.assertEqual(counter.junk, 2)

    def test_an_accepted_message_starts_the_count_again(self) -> None:
        counter = JunkCounter(limit=3)
        for _ in range(3):
            counter.command()
        counter.command()
        counter.progress()  # MAIL accepted
        counter.message_accepted()
        self.assertEqual(counter.junk, 0)
        counter.command()
        counter.greeted()  # the first greeting after a message is progress again
        self.assertEqual(counter.junk, 0)
