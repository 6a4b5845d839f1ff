"""Tests for `pymta ctl`: usage, not-running and signal fallback exit codes, tcpok."""

from __future__ import annotations

import io
import os
import signal
import sys

from twisted.trial import unittest

from pymta.cli import ctl


class CtlCommandTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "run"))
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)

    def test_usage(self) -> None:
        self.assertEqual(ctl.main([]), ctl.EXIT_USAGE)
        self.assertEqual(ctl.main(["--root", self.root, "explode"]), ctl.EXIT_USAGE)

    def test_not_running(self) -> None:
        self.assertEqual(ctl.main(["--root", self.root, "stat"]), ctl.EXIT_TEMP)
        self.assertIn("pymta-send is not running", self.err.getvalue())
        self.assertEqual(ctl.main(["--root", self.root, "doqueue"]), ctl.EXIT_TEMP)

    def test_signal_fallback(self) -> None:
        sent = []
        self.patch(os, "kill", lambda pid, sig: sent.append((pid, sig)))
        with open(os.path.join(self.root, "run", "pymta-send.pid"), "w") as f:
            f.write("4321\n")
        self.assertEqual(ctl.main(["--root", self.root, "doqueue"]), ctl.EXIT_OK)
        self.assertEqual(ctl.main(["--root", self.root, "reload"]), ctl.EXIT_OK)
        self.assertEqual(sent, [(4321, signal.SIGALRM), (4321, signal.SIGHUP)])
        # pause has no signal equivalent: without the socket it is a temporary failure
        self.assertEqual(ctl.main(["--root", self.root, "pause"]), ctl.EXIT_TEMP)

    def test_tcpok_clears_dead_hosts(self) -> None:
        from pymta.remote import tcpto

        os.makedirs(os.path.join(self.root, "queue", "lock"))
        path = tcpto.tcpto_path(self.root)
        with open(path, "wb") as f:
            f.write(b"\x01" * 1024)
        self.assertEqual(ctl.main(["--root", self.root, "tcpok"]), ctl.EXIT_OK)
        with open(path, "rb") as f:
            self.assertEqual(set(f.read()), {0})

    def test_permission_denied_is_named(self) -> None:
        def denied(path, command, timeout=30.0, args=()):
            raise PermissionError(13, "Permission denied")

        self.patch(ctl, "_ask", denied)
        self.assertEqual(ctl.main(["--root", self.root, "stat"]), ctl.EXIT_TEMP)
        self.assertIn("permission denied", self.err.getvalue())


class CtlQueueActionTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "run"))
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)

    def test_malformed_selection_is_a_usage_error_before_anything_is_sent(self) -> None:
        sent = []
        self.patch(ctl, "_ask", lambda *a, **kw: sent.append(a) or "ok\n")
        for args in (["hold"], ["delete", "--older-than", "2w"], ["retry", "--frob"], ["stat", "x"],
                     ["release", "1", "--reason", "r"]):
            self.assertEqual(ctl.main(["--root", self.root, *args]), ctl.EXIT_USAGE, args)
        self.assertEqual(sent, [])
        self.assertIn("bad age '2w'", self.err.getvalue())

    def test_request_sent_and_reply_printed(self) -> None:
        sent = []

        def ask(path, command, timeout=30.0, args=()):
            sent.append((command, args))
            return "ok\nno message matched\n"

        self.patch(ctl, "_ask", ask)
        self.assertEqual(ctl.main(["--root", self.root, "bounce", "--domain", "x.example", "--reason", "a\tb"]),
                         ctl.EXIT_OK)
        self.assertEqual(sent, [("bounce", ("--domain", "x.example", "--reason", "a b"))])
        self.assertEqual(self.out.getvalue(), "no message matched\n")

    def test_not_running(self) -> None:
        self.assertEqual(ctl.main(["--root", self.root, "delete", "--domain", "x.example"]), ctl.EXIT_TEMP)
        self.assertIn("pymta-send is not running", self.err.getvalue())


class StopAndFlushFallbackTests(unittest.SynchronousTestCase):
    """Without the control socket, flush and stop fall back to signals; stop waits for the pid file."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "run"))
        self.pidfile = os.path.join(self.root, "run", "pymta-send.pid")
        with open(self.pidfile, "w") as f:
            f.write("4321\n")
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)
        self.sent: list[tuple[int, int]] = []

    def test_flush_is_doqueue(self) -> None:
        self.patch(os, "kill", lambda pid, sig: self.sent.append((pid, sig)))
        self.assertEqual(ctl.main(["--root", self.root, "flush"]), ctl.EXIT_OK)
        self.assertEqual(self.sent, [(4321, signal.SIGALRM)])

    def test_stop_signals_and_waits_until_the_process_is_gone(self) -> None:
        alive = [True]

        def kill(pid: int, sig: int) -> None:
            self.sent.append((pid, sig))
            if sig == 0:
                if not alive[0]:
                    raise ProcessLookupError(3, "No such process")
                alive[0] = len([s for s in self.sent if s[1] == 0]) < 3  # gone at the third look

        self.patch(os, "kill", kill)
        self.assertEqual(ctl.main(["--root", self.root, "stop"]), ctl.EXIT_OK)
        self.assertEqual(self.sent, [(4321, signal.SIGTERM)] + [(4321, 0)] * 4)
        self.assertIn("pymta-send (pid 4321) has stopped", self.out.getvalue())

    def test_stop_gives_up_waiting_after_the_bound(self) -> None:
        self.patch(os, "kill", lambda pid, sig: self.sent.append((pid, sig)))
        self.patch(ctl, "STOP_WAIT", 0.1)
        self.assertEqual(ctl.main(["--root", self.root, "stop"]), ctl.EXIT_TEMP)
        self.assertIn("pymta-send (pid 4321) is still stopping", self.err.getvalue())

    def test_stop_without_a_pid_file_does_not_wait(self) -> None:
        os.unlink(self.pidfile)
        self.patch(ctl, "_ask", lambda path, command, timeout=30.0, args=(): "ok\npymta-send is stopping\n")
        self.assertEqual(ctl.main(["--root", self.root, "stop"]), ctl.EXIT_OK)
        self.assertEqual(self.out.getvalue(), "pymta-send is stopping\n")
