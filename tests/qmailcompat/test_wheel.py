"""The qmail-queue script and the compat package are in a wheel built from this tree (L{tests.deploy.test_wheel.built_wheel})."""

from __future__ import annotations

import zipfile

from twisted.trial.unittest import SynchronousTestCase

from tests.deploy.test_wheel import built_wheel


class CompatInTheWheelTests(SynchronousTestCase):
    def test_qmail_queue_script_and_compat_package(self) -> None:
        _, wheel = built_wheel()
        with zipfile.ZipFile(wheel) as z:
            info = z.getinfo("pymta/qmailbin/qmail-queue")
            self.assertEqual((info.external_attr >> 16) & 0o555, 0o555)
            self.assertTrue(z.read(info).startswith(b"#!/bin/sh\n"))
            names = set(z.namelist())
        for module in ("__init__", "__main__", "programs", "install"):
            self.assertIn(f"pymta/qmailcompat/{module}.py", names)
        self.assertIn("pymta/cli/qmailcompat.py", names)
