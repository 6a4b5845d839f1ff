"""Tests for pymta health (and pymta ctl health) against real sockets on 127.0.0.1."""

from __future__ import annotations

import io
import os
import socket
import sys
import tempfile
import threading

from twisted.trial import unittest

from pymta.cli import ctl, health


class Greeter:
    """A listening socket that sends one line to each client, in a thread."""

    def __init__(self, test: unittest.TestCase, line: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.line = line
        threading.Thread(target=self.serve, daemon=True).start()
        test.addCleanup(self.sock.close)

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                client.sendall(self.line)


class HealthTests(unittest.TestCase):
    def run_main(self, main, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        return main(list(argv)), out.getvalue(), err.getvalue()

    def test_smtp_greeting(self) -> None:
        server = Greeter(self, b"220 test.example ESMTP\r\n")
        code, out, err = self.run_main(health.main, "smtp", f"tcp:127.0.0.1:{server.port}")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"ok: pymta-smtpd at tcp:127.0.0.1:{server.port} is serving\n")

    def test_smtp_refusing_greeting(self) -> None:
        server = Greeter(self, b"421 too many connections, try again later (#4.3.2)\r\n")
        code, out, err = self.run_main(health.main, "smtp", f"127.0.0.1:{server.port}")
        self.assertEqual((code, out), (111, ""))
        self.assertIn("greeted with '421 too many connections", err)
        self.assertEqual(err.count("\n"), 1)

    def test_pop3_greeting(self) -> None:
        server = Greeter(self, b"+OK <1.2@test.example>\r\n")
        self.assertEqual(self.run_main(health.main, "pop3", f"127.0.0.1:{server.port}")[0], 0)
        smtp = Greeter(self, b"220 not pop3\r\n")
        self.assertEqual(self.run_main(health.main, "pop3", f"127.0.0.1:{smtp.port}")[0], 111)

    def test_nothing_listening(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, out, err = self.run_main(health.main, "smtp", f"127.0.0.1:{port}")
        self.assertEqual(code, 111)
        self.assertTrue(err.startswith(f"pymta health: pymta-smtpd at 127.0.0.1:{port} is not serving: "), err)

    def test_usage(self) -> None:
        self.assertEqual(self.run_main(health.main, "smtp")[0], 100)
        self.assertEqual(self.run_main(health.main, "smtp", "nonsense")[0], 100)
        self.assertEqual(self.run_main(health.main, "imap", "x:1")[0], 100)

    def test_send_not_running(self) -> None:
        root = tempfile.mkdtemp(prefix="pymta-health-")
        self.addCleanup(os.rmdir, root)
        for main, argv in ((health.main, ["--root", root, "send"]), (ctl.main, ["--root", root, "health"])):
            code, out, err = self.run_main(main, *argv)
            self.assertEqual((code, out), (111, ""))
            self.assertEqual(err, f"pymta health: pymta-send is not serving: {root}/run/ctl.sock: No such file or directory\n")

    def test_http_not_serving(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, _, err = self.run_main(health.main, "http", f"http://127.0.0.1:{port}/healthz")
        self.assertEqual(code, 111)
        self.assertIn("Connection refused", err)
