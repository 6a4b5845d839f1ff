"""Which QMAILQUEUE program runs: the client's rule wins over the daemon's environment; empty is none."""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.local.program import QMAILQUEUE_PROGRAM
from pymta.qmailqueue.program import DEFAULT_TIMEOUT, QUEUE_PROGRAM, program_for


class ProgramTests(SynchronousTestCase):
    def test_unset_or_empty_is_no_program(self) -> None:
        self.assertIsNone(program_for("/r", {}))
        self.assertIsNone(program_for("/r", {"QMAILQUEUE": ""}))
        self.assertIsNone(program_for("/r", {"QMAILQUEUE": "/bin/scan"}, {"QMAILQUEUE": ""}))

    def test_the_rule_wins(self) -> None:
        program = program_for("/r", {"QMAILQUEUE": "/bin/daemon-wide"}, {"QMAILQUEUE": "/bin/outside", "TCPREMOTEIP": "192.0.2.1"})
        assert program is not None
        self.assertEqual(program.path, "/bin/outside")
        self.assertEqual(program.env["TCPREMOTEIP"], "192.0.2.1")
        program = program_for("/r", {"QMAILQUEUE": "/bin/daemon-wide"}, {"TCPREMOTEIP": "192.0.2.1"})
        assert program is not None
        self.assertEqual(program.path, "/bin/daemon-wide")

    def test_environment_cwd_and_bound(self) -> None:
        program = program_for("/r", {"QMAILQUEUE": "bin/scan", "PATH": "/bin", "PYMTA_ROOT": "/elsewhere"}, timeout=7)
        assert program is not None
        self.assertEqual((program.path, program.cwd, program.timeout), ("/r/bin/scan", "/r", 7))
        self.assertEqual(program.env["PYMTA_ROOT"], "/r")
        self.assertEqual(program.env["PYMTA_PYTHON"], sys.executable)
        self.assertEqual(program.env["PATH"], "/bin")
        self.assertEqual(program.env["QMAILQUEUE"], QUEUE_PROGRAM)
        self.assertEqual(QUEUE_PROGRAM, QMAILQUEUE_PROGRAM)
        program = program_for("/r", {"QMAILQUEUE": "/x", "PYMTA_PYTHON": "/py"})
        assert program is not None
        self.assertEqual((program.env["PYMTA_PYTHON"], program.timeout), ("/py", DEFAULT_TIMEOUT))
