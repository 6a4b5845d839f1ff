"""Tests for pymta.signals."""

import os
import signal

from twisted.trial import unittest

from pymta.signals import SignalService


class ImmediateReactor:
    def callFromThread(self, f, *args):  # noqa: N802 - Twisted's name
        f(*args)


class SignalServiceTests(unittest.SynchronousTestCase):
    def test_handler_runs_and_previous_comes_back(self) -> None:
        calls = []
        previous = signal.getsignal(signal.SIGHUP)
        service = SignalService({signal.SIGHUP: lambda: calls.append("hup")}, ImmediateReactor())
        service.startService()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            self.assertEqual(calls, ["hup"])
        finally:
            service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
