"""Tests for pymta.queue.trigger: the lock/trigger FIFO listener on the real reactor."""

from __future__ import annotations

import os

from twisted.internet import reactor, task
from twisted.trial import unittest

from pymta.queue.trigger import TriggerListener
from tests.queue.test_service import wait_for


def pull(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"\0")
    os.close(fd)


class TriggerTests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        os.mkfifo(self.path, 0o622)
        self.pulls = 0

    def on_pull(self) -> None:
        self.pulls += 1

    async def test_pulls_seen_without_busy_loop(self) -> None:
        listener = TriggerListener(self.path, self.on_pull, reactor)
        listener.startService()
        self.addCleanup(listener.stopService)
        pull(self.path)
        await wait_for(lambda: self.pulls == 1)
        await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.pulls, 1)  # no spurious wake-ups once the writer has gone
        pull(self.path)
        await wait_for(lambda: self.pulls == 2)

    async def test_reopened_after_end_of_file(self) -> None:
        """Without our own write end, the writer's close is an end-of-file: the FIFO is reopened."""
        listener = TriggerListener(self.path, self.on_pull, reactor)
        real_open = os.open

        def no_write_end(path, flags, *args):
            if path == self.path and flags & os.O_WRONLY:
                raise PermissionError(13, "denied")
            return real_open(path, flags, *args)

        self.patch(os, "open", no_write_end)
        listener.startService()
        self.addCleanup(listener.stopService)
        self.assertIsNone(listener._write_fd)
        self.patch(os, "open", real_open)
        for n in (1, 2, 3):
            await wait_for(lambda: listener._reader is not None)
            pull(self.path)
            await wait_for(lambda: self.pulls == n)
        # the reopen also took the write end this time: no more end-of-file from now on
        self.assertIsNotNone(listener._write_fd)
