"""Tests for pymta.queue.retry: qmail's retry formula and both schedules (docs/internals.md, 'Retry schedule')."""

from twisted.trial import unittest

from pymta.queue.retry import is_dying, next_retry

BIRTH = 1_700_000_000


def schedule(channel: str, attempts: int) -> list[int]:
    """Ages of the first C{attempts} passes when every pass starts exactly on time."""
    ages = [0]
    while len(ages) < attempts:
        ages.append(next_retry(BIRTH, BIRTH + ages[-1], channel) - BIRTH)
    return ages


class RetryTests(unittest.SynchronousTestCase):
    def test_local_table(self) -> None:
        self.assertEqual(schedule("local", 8), [0, 100, 400, 900, 1600, 2500, 3600, 4900])

    def test_remote_table(self) -> None:
        self.assertEqual(schedule("remote", 7), [0, 400, 1600, 3600, 6400, 10000, 14400])

    def test_early_run(self) -> None:
        # an early (SIGALRM) pass at age 97 gives birth + (9 + 20)^2
        self.assertEqual(next_retry(BIRTH, BIRTH + 97, "remote"), BIRTH + 29 * 29)

    def test_birth_in_future(self) -> None:
        self.assertEqual(next_retry(BIRTH, BIRTH - 50, "local"), BIRTH + 100)

    def test_dying(self) -> None:
        self.assertFalse(is_dying(BIRTH, BIRTH + 604800, 604800))
        self.assertTrue(is_dying(BIRTH, BIRTH + 604801, 604800))
