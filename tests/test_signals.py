"""Tests for pymta.signals."""

import os
import signal

from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from pymta.control import ControlError
from pymta.signals import SignalService, reload_on_hangup


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

    def test_ignored_between_privileged_start_and_start(self) -> None:
        """A SIGALRM after the listeners are bound but before the handlers are in must not end the process."""
        calls = []
        previous = signal.getsignal(signal.SIGALRM)
        self.assertEqual(previous, signal.SIG_DFL)  # the default action ends the process
        service = SignalService({signal.SIGALRM: lambda: calls.append("alrm")}, ImmediateReactor())
        service.privilegedStartService()
        try:
            self.assertEqual(signal.getsignal(signal.SIGALRM), signal.SIG_IGN)
            os.kill(os.getpid(), signal.SIGALRM)
            self.assertEqual(calls, [])
            service.startService()
            os.kill(os.getpid(), signal.SIGALRM)
            self.assertEqual(calls, ["alrm"])
        finally:
            service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGALRM), previous)


class _Reader:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0

    def reload(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


class ReloadOnHangupTests(unittest.SynchronousTestCase):
    def hangup(self, reader: _Reader) -> tuple[list[str], list[dict]]:
        order: list[str] = []
        events: list[dict] = []
        log = Logger(namespace="test", observer=events.append)
        service = reload_on_hangup(reader, lambda: order.append("service"), "pop3d", log, ImmediateReactor())
        self.assertEqual(list(service.handlers), [signal.SIGHUP])
        service.startService()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
        finally:
            service.stopService()
        return order, [formatEvent(e) for e in events]

    def test_controls_then_service(self) -> None:
        reader = _Reader()
        order, lines = self.hangup(reader)
        self.assertEqual((reader.calls, order), (1, ["service"]))
        self.assertEqual(lines, ["pop3d: reloaded"])

    def test_broken_controls_keep_the_whole_old_configuration(self) -> None:
        """The service does not re-read its own files either: the old configuration stays whole."""
        reader = _Reader(ControlError("/r/control/me", 1, "empty"))
        order, lines = self.hangup(reader)
        self.assertEqual(order, [])
        self.assertEqual(lines, ["pop3d: reload refused, old configuration kept: /r/control/me:1: empty"])
