"""Tests for pymta.remote.mtastssettings: control/mtasts, parsed strictly."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError
from pymta.remote.mtastssettings import MTASTSSettings, mtasts_settings
from tests.controlfiles import controls_from
from tests.smtpd.tlsutil import make_certificate


class SettingsTests(SynchronousTestCase):
    def controls(self, text: str | None) -> object:
        return controls_from(self, mtasts=text)

    def test_defaults_and_keywords(self) -> None:
        ca = os.path.abspath(self.mktemp())
        with open(ca, "wb") as f:
            f.write(make_certificate("ca.test", ca=True)[0])
        self.assertEqual(mtasts_settings(self.controls(None)), MTASTSSettings(True, None))
        self.assertEqual(mtasts_settings(self.controls("# nothing here\n")), MTASTSSettings(True, None))
        self.assertEqual(mtasts_settings(self.controls("off\n")), MTASTSSettings(False, None))
        self.assertEqual(mtasts_settings(self.controls(f"# tests\nca {ca}\n")), MTASTSSettings(True, ca))

    def test_refused_lines(self) -> None:
        ca = os.path.abspath(self.mktemp())
        with open(ca, "wb") as f:
            f.write(make_certificate("ca.test", ca=True)[0])
        cases = {
            "on\n": "control/mtasts:1: expected 'off' or 'ca /path/ca.pem', found 'on'",
            "off\noff\n": "control/mtasts:2: 'off' is given twice",
            "ca\n": "control/mtasts:1: expected 'off'",
            "ca ca.pem\n": "the CA file must be an absolute path",
            f"off\nca {ca}\n": "control/mtasts:2: 'ca' has no use when MTA-STS is 'off'",
        }
        for text, reason in cases.items():
            error = self.assertRaises(ControlError, mtasts_settings, self.controls(text))
            self.assertIn(reason, str(error), text)
