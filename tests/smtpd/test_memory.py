"""A 50 MB message through a real pymta-smtpd process: the peak memory grows by less than 20 MB."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

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


def spawn_memory_server(test: SynchronousTestCase, *args: str) -> subprocess.Popen:
    """tests.smtpd.memory_server in a child process, stopped at the test's end."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.smtpd.memory_server", *args],
        stdout=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": repo},
    )
    test.addCleanup(proc.wait)
    test.addCleanup(lambda: proc.poll() is None and proc.send_signal(signal.SIGTERM))
    return proc


def send_big_message(s: socket.socket, f, total: int) -> str:
    """One SMTP transaction with a body of C{total} bytes of 74-byte lines; the final reply."""
    s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    for _ in range(3):
        read_reply(f)
    s.sendall(b"Subject: big\r\n\r\n")
    chunk = (b"0123456789" * 7 + b"..\r\n") * 1024
    sent = 0
    while sent < total:
        s.sendall(chunk)
        sent += len(chunk)
    s.sendall(b".\r\n")
    return read_reply(f)


class MemoryTest(SynchronousTestCase):
    def test_fifty_megabytes_streamed(self) -> None:
        root = os.path.abspath(make_root(self.mktemp()))
        proc = spawn_memory_server(self, root)
        assert proc.stdout is not None
        _, port, _ = proc.stdout.readline().split()
        with socket.create_connection(("127.0.0.1", int(port)), timeout=60) as s:
            f = s.makefile("rb")
            self.assertTrue(read_reply(f).startswith("220 "))

            # warm-up: one small message, then take the baseline peak
            self.assertTrue(send_big_message(s, f, 100_000).startswith("250 ok"))
            _, _, base, _ = proc.stdout.readline().split()
            self.assertTrue(send_big_message(s, f, MESSAGE_BYTES).startswith("250 ok"))
            _, size, _, peak = proc.stdout.readline().split()
            s.sendall(b"QUIT\r\n")
        self.assertGreater(int(size), MESSAGE_BYTES * 0.95)
        growth = int(peak) - int(base)
        print(f"50 MB message: stored {size.decode()} bytes, RSS before {base.decode()} KiB, peak {peak.decode()} KiB")
        self.assertLess(growth, LIMIT_KIB, f"peak RSS grew by {growth} KiB")


def proc_kib(pid: int, field: str) -> int:
    """VmRSS or VmHWM of process C{pid} in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


class InjectBackPressureTest(SynchronousTestCase):
    """
    The same 50 MB message through smtpd writing to a real inject socket in
    another process: smtpd stops reading while the socket's buffer is full,
    so its own peak memory stays close to where it was.
    """

    if not os.path.exists("/proc/self/status"):
        skip = "needs /proc"

    def spawn(self, *args: str) -> subprocess.Popen:
        return spawn_memory_server(self, *args)

    def test_fifty_megabytes_through_inject_socket(self) -> None:
        root = os.path.abspath(make_root(self.mktemp()))
        sockdir = tempfile.mkdtemp(prefix="pymta-mem-")
        self.addCleanup(shutil.rmtree, sockdir, True)
        sock = os.path.join(sockdir, "inject.sock")
        queue = self.spawn(root, "--inject-server", sock)
        assert queue.stdout is not None
        self.assertEqual(queue.stdout.readline().split()[0], b"LISTENING")
        smtpd = self.spawn(root, "--inject", sock)
        assert smtpd.stdout is not None
        _, port, _ = smtpd.stdout.readline().split()
        with socket.create_connection(("127.0.0.1", int(port)), timeout=60) as s:
            f = s.makefile("rb")
            self.assertTrue(read_reply(f).startswith("220 "))

            self.assertTrue(send_big_message(s, f, 100_000).startswith("250 ok"))
            queue.stdout.readline()
            base = proc_kib(smtpd.pid, "VmHWM")
            self.assertTrue(send_big_message(s, f, MESSAGE_BYTES).startswith("250 ok"))
            _, size, _, _ = queue.stdout.readline().split()
            peak = proc_kib(smtpd.pid, "VmHWM")
            s.sendall(b"QUIT\r\n")
        self.assertGreater(int(size), MESSAGE_BYTES * 0.95)
        growth = peak - base
        print(f"50 MB message through the inject socket: stored {size.decode()} bytes, smtpd peak {base} -> {peak} KiB")
        self.assertLess(growth, 4 * 1024, f"smtpd's peak RSS grew by {growth} KiB")
