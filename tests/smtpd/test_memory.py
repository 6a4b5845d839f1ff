"""A 50 MB message through a real pymta-smtpd process: the peak memory grows by less than 20 MB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.smtpd.helpers import make_root

MESSAGE_BYTES = 50 * 1024 * 1024
LIMIT_KIB = 20 * 1024


def read_reply(f) -> str:  # type: ignore[no-untyped-def]
    while True:
        line = f.readline().decode()
        if not line:
            raise AssertionError("server closed the connection")
        if line[3:4] != "-":
            return line.strip()


class MemoryTest(SynchronousTestCase):
    def test_fifty_megabytes_streamed(self) -> None:
        root = os.path.abspath(make_root(self.mktemp()))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.smtpd.memory_server", root],
            stdout=subprocess.PIPE,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": repo},
        )
        self.addCleanup(proc.wait)
        self.addCleanup(lambda: proc.poll() is None and proc.send_signal(signal.SIGTERM))
        assert proc.stdout is not None
        _, port, _ = proc.stdout.readline().split()
        line = b"0123456789" * 7 + b"..\r\n"
        with socket.create_connection(("127.0.0.1", int(port)), timeout=60) as s:
            f = s.makefile("rb")
            self.assertTrue(read_reply(f).startswith("220 "))

            def send_message(total: int) -> str:
                s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
                for _ in range(3):
                    read_reply(f)
                s.sendall(b"Subject: big\r\n\r\n")
                chunk = line * 1024
                sent = 0
                while sent < total:
                    s.sendall(chunk)
                    sent += len(chunk)
                s.sendall(b".\r\n")
                return read_reply(f)

            # warm-up: one small message, then take the baseline peak
            self.assertTrue(send_message(100_000).startswith("250 ok"))
            _, _, base, _ = proc.stdout.readline().split()
            self.assertTrue(send_message(MESSAGE_BYTES).startswith("250 ok"))
            _, size, _, peak = proc.stdout.readline().split()
            s.sendall(b"QUIT\r\n")
        self.assertGreater(int(size), MESSAGE_BYTES * 0.95)
        growth = int(peak) - int(base)
        print(f"50 MB message: stored {size.decode()} bytes, RSS before {base.decode()} KiB, peak {peak.decode()} KiB")
        self.assertLess(growth, LIMIT_KIB, f"peak RSS grew by {growth} KiB")
