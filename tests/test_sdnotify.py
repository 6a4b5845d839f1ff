"""Tests for pymta.sdnotify: the datagrams a real unix socket receives, as systemd's would."""

from __future__ import annotations

import os
import socket
import tempfile

from twisted.internet.task import Clock
from twisted.trial import unittest

from pymta.sdnotify import SystemdNotifier, notify, watchdog_interval


class RunningClock(Clock):
    """A Clock whose reactor is already running: callWhenRunning calls at once."""

    def callWhenRunning(self, f, *args):  # type: ignore[no-untyped-def]
        f(*args)


class NotifySocket:
    """A datagram socket bound where NOTIFY_SOCKET would point."""

    def __init__(self, test: unittest.TestCase, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        if abstract:
            name = f"pymta-test-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            directory = tempfile.mkdtemp(prefix="pymta-notify-")
            test.addCleanup(os.rmdir, directory)
            self.address = os.path.join(directory, "notify")
            self.sock.bind(self.address)
            test.addCleanup(os.unlink, self.address)
        self.sock.setblocking(False)

    def received(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


class NotifyTests(unittest.TestCase):
    def test_sends_to_a_path(self) -> None:
        target = NotifySocket(self)
        self.assertTrue(notify(target.address, "READY=1"))
        self.assertEqual(target.received(), ["READY=1"])

    def test_sends_to_an_abstract_socket(self) -> None:
        target = NotifySocket(self, abstract=True)
        self.assertTrue(notify(target.address, "STOPPING=1"))
        self.assertEqual(target.received(), ["STOPPING=1"])

    def test_nothing_without_a_socket(self) -> None:
        self.assertFalse(notify(None, "READY=1"))
        self.assertFalse(notify("/nonexistent/notify", "READY=1"))

    def test_watchdog_interval(self) -> None:
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7), 15.0)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7), 15.0)
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7))
        self.assertIsNone(watchdog_interval({}, 7))
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "0"}, 7))


class SystemdNotifierTests(unittest.TestCase):
    def test_ready_watchdog_stopping(self) -> None:
        target = NotifySocket(self)
        environ = {"NOTIFY_SOCKET": target.address, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid()),
                   "PATH": "/bin"}
        clock = RunningClock()
        notifier = SystemdNotifier(clock, environ)
        self.assertEqual(environ, {"PATH": "/bin"})  # delivery programs do not inherit them
        notifier.startService()
        self.assertEqual(target.received(), [f"READY=1\nMAINPID={os.getpid()}", "WATCHDOG=1"])
        clock.advance(2)
        clock.advance(2)
        self.assertEqual(target.received(), ["WATCHDOG=1", "WATCHDOG=1"])
        notifier.stopService()
        clock.advance(10)
        self.assertEqual(target.received(), ["STOPPING=1"])

    def test_no_watchdog_unless_asked(self) -> None:
        target = NotifySocket(self)
        clock = RunningClock()
        notifier = SystemdNotifier(clock, {"NOTIFY_SOCKET": target.address})
        notifier.startService()
        clock.advance(1000)
        self.assertEqual(target.received(), [f"READY=1\nMAINPID={os.getpid()}"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_silent_without_notify_socket(self) -> None:
        clock = RunningClock()
        notifier = SystemdNotifier(clock, {"WATCHDOG_USEC": "1000000"})
        notifier.startService()
        notifier.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
