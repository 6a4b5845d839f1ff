"""
QMAILQUEUE for pymta inject, with real child processes: shell scripts
with qmail-queue's interface.
"""

from __future__ import annotations

import io
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.qmailqueue.blocking import run_program
from pymta.qmailqueue.program import QmailQueueProgram
from pymta.queue.errors import QueueFailure


def script(testcase: SynchronousTestCase, body: str) -> str:
    """An executable /bin/sh script in a temporary directory of C{testcase}."""
    path = os.path.abspath(testcase.mktemp())
    os.makedirs(path)
    path = os.path.join(path, "qq")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


class RunProgramTests(SynchronousTestCase):
    def program(self, body: str, timeout: float = 30) -> QmailQueueProgram:
        self.out = os.path.abspath(self.mktemp())
        path = script(self, body)
        env = (("PATH", os.environ.get("PATH", "/bin:/usr/bin")), ("OUT", self.out))
        return QmailQueueProgram(path, os.path.dirname(path), env, timeout)

    def test_message_on_fd0_envelope_on_fd1_in_the_root(self) -> None:
        program = self.program('cat > "$OUT.message"; cat <&1 > "$OUT.envelope"; pwd > "$OUT.cwd"; echo "$#" > "$OUT.args"\n')
        receipt = run_program(program, io.BytesIO(b"Subject: s\n\n" + b"z" * 300000 + b"\n"), "a@x.example", ["b@y.example", "c@z.example"])
        self.assertGreater(receipt.qp, 0)
        with open(self.out + ".message", "rb") as f:
            self.assertEqual(f.read(), b"Subject: s\n\n" + b"z" * 300000 + b"\n")
        with open(self.out + ".envelope", "rb") as f:
            self.assertEqual(f.read(), b"Fa@x.example\0Tb@y.example\0Tc@z.example\0\0")
        with open(self.out + ".cwd") as f:
            self.assertEqual(os.path.realpath(f.read().strip()), os.path.realpath(program.cwd))
        with open(self.out + ".args") as f:
            self.assertEqual(f.read(), "0\n")

    def test_exit_31_without_reading(self) -> None:
        program = self.program("exit 31\n")
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"x" * 1000000, "a@x.example", ["b@y.example"])
        self.assertEqual((caught.exception.text, caught.exception.permanent, caught.exception.exit_code),
                         ("mail server permanently rejected message (#5.3.0)", True, 31))

    def test_exit_82_with_a_reply_on_fd6(self) -> None:
        program = self.program('cat > /dev/null; printf "Dno thanks, virus (#5.7.1)" >&6; exit 82\n')
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"m\n", "", ["b@y.example"])
        self.assertEqual((caught.exception.text, caught.exception.permanent), ("no thanks, virus (#5.7.1)", True))

    def test_exit_0_without_reading_is_not_queued(self) -> None:
        program = self.program("exec 0<&- 1>&-; exit 0\n")
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"x" * 1000000, "", ["b@y.example"])
        self.assertEqual(caught.exception.text, "qq read error (#4.3.0)")

    def test_killed_is_a_crash(self) -> None:
        program = self.program("kill -9 $$\n")
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"m\n", "", ["b@y.example"])
        self.assertEqual((caught.exception.text, caught.exception.permanent), ("qq crashed (#4.3.0)", False))

    def test_a_program_that_cannot_run_is_120(self) -> None:
        program = self.program("exit 0\n")
        os.chmod(program.path, 0o644)
        if os.access(program.path, os.X_OK):
            os.unlink(program.path)  # root may run anything with a mode bit; a missing file fails for all
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"m\n", "", ["b@y.example"])
        self.assertEqual((caught.exception.text, caught.exception.exit_code), ("unable to exec qq (#4.3.0)", 120))

    def test_a_hanging_program_is_killed_after_its_bound(self) -> None:
        program = self.program("cat > /dev/null; exec sleep 600\n", timeout=1)
        started = time.monotonic()
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"m\n", "", ["b@y.example"])
        self.assertEqual((caught.exception.text, caught.exception.permanent), ("qq timeout (#4.3.0)", False))
        self.assertLess(time.monotonic() - started, 20)

    def test_one_that_never_reads_is_killed_too(self) -> None:
        program = self.program("exec sleep 600\n", timeout=1)
        with self.assertRaises(QueueFailure) as caught:
            run_program(program, b"x" * 1000000, "", ["b@y.example"])
        self.assertEqual(caught.exception.text, "qq timeout (#4.3.0)")
