"""
pymta.privsep: the checked privilege drop and the fork/reap helpers, with
real child processes (the drops themselves need root and run in a child).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

from twisted.trial.unittest import SynchronousTestCase

from pymta.privsep import PrivilegeDropError, become, fork_child, kill_and_reap, reap_ended, wait_child

IS_ROOT = os.getuid() == 0


def in_child(run: Callable[[], str]) -> tuple[int, str]:
    """Run C{run} in a forked child; its exit status and what it returned (or raised)."""
    r, w = os.pipe()

    def main() -> int:
        os.close(r)
        try:
            text = run()
        except Exception as e:
            text = f"{type(e).__name__}: {e}"
        os.write(w, text.encode())
        return 0

    pid = fork_child(main)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    status = wait_child(pid)
    assert status is not None
    return os.waitstatus_to_exitcode(status), data.decode()


class BecomeTests(SynchronousTestCase):
    def test_root_targets_refused_before_anything_changes(self) -> None:
        e = self.assertRaises(PrivilegeDropError, become, 0, 4242)
        self.assertEqual(str(e), "refusing to become uid 0 (root)")
        e = self.assertRaises(PrivilegeDropError, become, 4242, 0)
        self.assertIn("refusing to become gid 0", str(e))
        self.assertRaises(PrivilegeDropError, become, -1, 5)
        self.assertEqual(os.getuid(), 0 if IS_ROOT else os.getuid())

    def test_without_root_only_what_it_already_is(self) -> None:
        def run() -> str:
            if IS_ROOT:
                become(4242, 4343)
            again = become(4242, 4343) if IS_ROOT else become(os.getuid(), os.getgid())
            try:
                become(os.getuid() + 1, os.getgid())
            except PrivilegeDropError as e:
                return f"{again}|{e}"
            return "no refusal"

        code, text = in_child(run)
        self.assertEqual(code, 0)
        again, refusal = text.split("|")
        self.assertEqual(again, "False")
        self.assertIn("not running as root, cannot become uid", refusal)

    def test_drop_is_complete(self) -> None:
        if not IS_ROOT:
            raise self.skipTest("needs root")

        def run() -> str:
            changed = become(4242, 4343)
            try:
                os.setuid(0)
                back = "root again"
            except PermissionError:
                back = "no way back"
            return repr((changed, os.getresuid(), os.getresgid(), os.getgroups(), back))

        self.assertEqual(in_child(run), (0, repr((True, (4242,) * 3, (4343,) * 3, [4343], "no way back"))))

    def test_root_group_when_asked(self) -> None:
        if not IS_ROOT:
            raise self.skipTest("needs root")
        code, text = in_child(lambda: repr((become(4242, 0, allow_root_group=True), os.getresgid())))
        self.assertEqual((code, text), (0, repr((True, (0, 0, 0)))))


class ForkAndReapTests(SynchronousTestCase):
    def exit_code(self, pid: int) -> int:
        status = wait_child(pid)
        assert status is not None
        return os.waitstatus_to_exitcode(status)

    def test_status_whatever_the_child_does(self) -> None:
        self.assertEqual(self.exit_code(fork_child(lambda: 7)), 7)
        self.assertEqual(self.exit_code(fork_child(lambda: None)), 0)

        def raises() -> int:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # its one line of complaint goes nowhere
            raise RuntimeError("boom")

        def exits() -> int:
            raise SystemExit(3)

        self.assertEqual(self.exit_code(fork_child(raises, status_on_error=111)), 111)
        self.assertEqual(self.exit_code(fork_child(exits)), 3)

    def test_reap_without_blocking(self) -> None:
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        self.addCleanup(os.close, r)
        waiting = fork_child(lambda: len(os.read(r, 1)))  # ends when the test writes
        done = fork_child(lambda: 5)
        pids = {waiting, done}
        deadline = time.monotonic() + 20
        ended: dict[int, int] = {}
        while done in pids and time.monotonic() < deadline:
            ended.update(reap_ended(pids))
        self.assertEqual((pids, os.waitstatus_to_exitcode(ended[done])), ({waiting}, 5))
        os.write(w, b"x")
        self.assertEqual(self.exit_code(waiting), 1)
        self.assertEqual(reap_ended({waiting}), {waiting: 0})  # no child any more: counts as ended

    def test_wait_with_a_deadline_then_kill(self) -> None:
        pid = fork_child(lambda: time.sleep(60))
        started = time.monotonic()
        self.assertIsNone(wait_child(pid, 0.05))
        self.assertLess(time.monotonic() - started, 10)
        status = kill_and_reap(pid)
        self.assertEqual((os.WIFSIGNALED(status), os.WTERMSIG(status)), (True, signal.SIGKILL))
