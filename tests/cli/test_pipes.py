"""
Printing commands in a real pipe to C{head -1} (pymta.cli.pipes): no
traceback, the first line arrives, the exit status is a shell's for SIGPIPE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.pipes import EXIT_BROKEN_PIPE
from tests.cli.queuefiles import QueueFiles

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
#: runs of each pipeline: the old failure showed 35 times in 40
RUNS = 8


class PipeTests(SynchronousTestCase):
    def setUp(self) -> None:
        # enough messages that the listing is far larger than a pipe holds (64 KiB)
        self.scratch = os.path.abspath(self.mktemp())
        files = QueueFiles(os.path.join(self.scratch, "root"))
        ids = [files.commit(f"s{i}@from.example", [f"r{i}@dom{i % 7}.example", f"u{i}@mail.example"])
               for i in range(1000)]
        files.preprocess(ids, time.time() - 60)
        self.root = files.root
        self.mailq = os.path.join(self.scratch, "mailq")
        os.symlink(os.path.join(BIN, "pymta-sendmail"), self.mailq)

    def pipeline(self, command: str) -> tuple[str, str, list[str]]:
        """C{command | head -1} in bash: head's output, stderr, every exit status of the pipe."""
        script = f'{command} 2>"$ERR" | head -1; echo "status ${{PIPESTATUS[*]}}"'
        errfile = os.path.join(self.scratch, "stderr")
        done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=120, cwd=SRC,
                              env={**os.environ, "PYMTA_ROOT": self.root, "ERR": errfile,
                                   "PATH": BIN + os.pathsep + os.environ.get("PATH", "")})
        first, _, status = done.stdout.decode().partition("status ")
        with open(errfile) as f:
            return first, f.read(), status.split()

    def check(self, command: str) -> None:
        for _ in range(RUNS):
            first, err, status = self.pipeline(command)
            self.assertEqual(err, "", command)
            self.assertRegex(first, r"^\d+ \w+ \d{4} \d\d:\d\d:\d\d GMT  #\d+  \d+  <s\d+@from.example> \n$")
            self.assertEqual(status, [str(EXIT_BROKEN_PIPE), "0"], command)

    def test_qread(self) -> None:
        self.check("pymta qread")

    def test_mailq(self) -> None:
        self.check(self.mailq)

    def test_sendmail_bp(self) -> None:
        self.check("pymta-sendmail -bp")

    def test_qstat_fits_in_the_pipe(self) -> None:
        """qstat's two lines fit in the pipe: head -1 takes the first, qstat exits 0."""
        for _ in range(RUNS):
            first, err, status = self.pipeline("pymta qstat")
            self.assertEqual((first, err, status), ("messages in queue: 1000\n", "", ["0", "0"]))

    def test_python_dash_m(self) -> None:
        """python -m pymta.cli.main goes through the same guard."""
        first, err, status = self.pipeline(f"{sys.executable} -m pymta.cli.main qread")
        self.assertEqual((err, status), ("", [str(EXIT_BROKEN_PIPE), "0"]))
