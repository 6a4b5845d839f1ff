"""
A real `twistd -n pymta-pop3d` under 1,000 parallel connections from one
address: the per-address and total limits hold (counted at accept), a
client from another address is served, the daemon raised its open-files
limit.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from pymta.passwdfile import set_password
from tests.pop3d.helpers import sample_maildir
from tests.pop3d.test_tap import REPO, free_port

PER_ADDRESS = b"-ERR [SYS/TEMP] too many connections from your address, try again later\r\n"
TOTAL = b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
DAEMON_SOFT_LIMIT = 512  # the daemon is started with this soft limit and raises it


def raise_own_limit(test: SynchronousTestCase, wanted: int) -> None:
    """This test process needs a descriptor per client socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise test.skipTest(f"needs {wanted} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    test.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))


class ThousandConnections(SynchronousTestCase):
    def setUp(self) -> None:
        raise_own_limit(self, 1400)
        self.root = os.path.abspath(self.mktemp())
        home = os.path.join(self.root, "home", "u")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid()
        if uid == 0:  # served by a mailbox child running as the test uid
            from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree

            os.chmod(os.path.dirname(self.root), 0o755)
            chown_tree(home, TEST_UID, TEST_GID)
            # a POP3-only root: pymta-pop3d runs as the owner of run/ (it refuses to stay root)
            os.makedirs(os.path.join(self.root, "run"))
            os.chown(os.path.join(self.root, "run"), TEST_UID, TEST_GID)
            uid = TEST_UID
        set_password(os.path.join(self.root, "users", "passwd"), "u", "pw", uid, uid, home, scheme="PLAIN")
        if uid != os.getuid():  # the daemon, as the owner of run/, reads users/passwd
            os.chown(os.path.join(self.root, "users", "passwd"), uid, uid)
        self.port = free_port()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.log = os.path.join(self.root, "pop3d.log")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", f"--logfile={self.log}", "pymta-pop3d", "--root", self.root,
             "--listen", f"tcp:{self.port}:interface=127.0.0.1", "--allow-plaintext-auth"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_SOFT_LIMIT, hard)),
        )
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    if s.makefile("rb").readline().startswith(b"+OK "):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.fail("twistd did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def connect(self, source: str) -> tuple[socket.socket, bytes]:
        """A connection from C{source} and the server's first line."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20, source_address=(source, 0))
        try:
            return s, s.makefile("rb").readline()
        except OSError:
            return s, b""

    def connect_all(self, sources: list[str]) -> list[tuple[socket.socket, bytes]]:
        """Connect from every address in C{sources} at once (16 threads)."""
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(self.connect, sources))
        self.sockets.extend(s for s, _ in results)
        return results

    def test_thousand_from_one_address(self) -> None:
        self.sockets: list[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in self.sockets])
        started = time.monotonic()
        first = [line for _, line in self.connect_all(["127.0.0.1"] * 1000)]
        served = [line for line in first if line.startswith(b"+OK <")]
        self.assertEqual(len(served), 10, "concurrencypop3perip defaults to 10")
        self.assertEqual(first.count(PER_ADDRESS), 990)

        # meanwhile a client from another address is served
        with socket.create_connection(("127.0.0.1", self.port), timeout=20, source_address=("127.0.0.2", 0)) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"+OK <"))
            s.sendall(b"USER u\r\nPASS pw\r\nSTAT\r\nQUIT\r\n")
            self.assertEqual([f.readline() for _ in range(4)], [b"+OK \r\n", b"+OK \r\n", b"+OK 3 83\r\n", b"+OK \r\n"])
            # the server has closed: it gave the slot back in the same step, before it accepts anything new
            self.assertEqual(f.readline(), b"")

        # 60 more from 20 other addresses at once: the total (40) holds, 10 are taken by 127.0.0.1
        sources = [f"127.0.0.{3 + i % 20}" for i in range(60)]
        lines = [line for _, line in self.connect_all(sources)]
        self.assertEqual(len([line for line in lines if line.startswith(b"+OK <")]), 30)
        self.assertEqual(lines.count(TOTAL), 30)
        self.assertLess(time.monotonic() - started, 60)

        # every slot comes back when the clients go
        for s in self.sockets:
            s.close()
        self.sockets = []
        deadline = time.monotonic() + 10
        while True:
            s, line = self.connect("127.0.0.1")
            s.close()
            if line.startswith(b"+OK <") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(line.startswith(b"+OK <"), line)

        with open(f"/proc/{self.proc.pid}/limits") as f:
            limits = [row for row in f.read().splitlines() if row.startswith("Max open files")][0]
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.assertEqual(limits.split()[3:5], [str(hard), str(hard)])
        self.stop()
        with open(self.log) as f:
            log = f.read()
        self.assertIn(f"open files limit {hard} (raised from {DAEMON_SOFT_LIMIT})", log)
        self.assertIn("pop3 refused 127.0.0.1: too many connections (per address)", log)
        self.assertNotIn("EMFILE", log)
