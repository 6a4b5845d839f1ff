"""Tests for pymta.smtpd.context: control/concurrencyperip (the limiter itself: tests/test_connectionlimit.py)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.smtpd.context import per_ip_limit
from tests.smtpd.helpers import make_root


class PerIPLimitTests(SynchronousTestCase):
    def limit(self, **controls: str) -> int:
        return per_ip_limit(load_controls(make_root(self.mktemp(), **controls)))

    def refused(self, text: str, lineno: int, reason: str) -> None:
        root = make_root(self.mktemp(), concurrencyperip=text)
        error = self.assertRaises(ControlError, per_ip_limit, load_controls(root))
        path = os.path.join(root, "control", "concurrencyperip")
        self.assertEqual((error.path, error.lineno), (path, lineno))
        self.assertTrue(str(error).startswith(f"{path}:{lineno}: "), str(error))
        self.assertIn(reason, str(error))

    def test_default_is_half_of_concurrencyincoming(self) -> None:
        self.assertEqual(self.limit(), 20)
        self.assertEqual(self.limit(concurrencyincoming="7"), 3)
        self.assertEqual(self.limit(concurrencyincoming="1"), 1)

    def test_value(self) -> None:
        self.assertEqual(self.limit(concurrencyperip="# per client\n5"), 5)

    def test_bad_values_refused(self) -> None:
        # each used to be ignored silently, leaving the default in force
        self.refused("five", 1, "found 'five'")
        self.refused("0", 1, "at least 1")
        self.refused("# limit\n5 sessions", 2, "found '5 sessions'")
        self.refused("-3", 1, "found '-3'")
        self.refused("5\n6", 2, "this line would be ignored: '6'")

