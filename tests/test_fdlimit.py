"""raise_open_files_limit in a child process started with a low soft limit (this process keeps its own)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = (
    "import resource; from pymta.fdlimit import raise_open_files_limit; "
    "print(*raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
)


def run_with_limit(soft: int, hard: int) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
        check=True, timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    ).stdout
    return [int(word) for word in out.split()]


class RaiseOpenFilesLimit(SynchronousTestCase):
    def setUp(self) -> None:
        self.hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if self.hard == resource.RLIM_INFINITY or self.hard < 300:
            raise self.skipTest(f"the hard limit is {self.hard}")

    def test_soft_raised_to_hard(self) -> None:
        self.assertEqual(run_with_limit(256, self.hard), [256, self.hard, self.hard, self.hard])

    def test_already_at_hard(self) -> None:
        self.assertEqual(run_with_limit(self.hard, self.hard), [self.hard, self.hard, self.hard, self.hard])

    def test_lower_hard_limit_is_the_operators(self) -> None:
        self.assertEqual(run_with_limit(128, 300), [128, 300, 300, 300])
