"""
The helper scripts are in a wheel built from this tree, and installed from
it they are executable and run on the installed pymta (the wheel is built
once per test process by L{tests.deploy.test_wheel.built_wheel}).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.qmailhelpers import NAMES
from tests.deploy.test_wheel import built_wheel, run


class HelperScriptsInTheWheelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.work, self.wheel = built_wheel()

    def test_scripts_are_executable_in_the_wheel(self) -> None:
        with zipfile.ZipFile(self.wheel) as z:
            for name in NAMES:
                info = z.getinfo(f"pymta/qmailbin/{name}")
                mode = info.external_attr >> 16
                self.assertEqual(mode & 0o555, 0o555, name)
                self.assertTrue(z.read(info).startswith(b"#!/bin/sh\n"), name)

    def test_installed_scripts_run(self) -> None:
        venv = os.path.join(self.work, "helpers-venv")
        self.addCleanup(shutil.rmtree, venv, True)
        made = run([sys.executable, "-m", "venv", "--without-pip", venv])
        self.assertEqual(made.returncode, 0, made.stderr)
        python = os.path.join(venv, "bin", "python")
        installed = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                         "--quiet", self.wheel])
        self.assertEqual(installed.returncode, 0, installed.stderr)
        where = run([python, "-c", "import pymta.qmailhelpers as q; print(q.BIN_DIR)"], cwd="/")
        bin_dir = where.stdout.strip()
        self.assertTrue(bin_dir.startswith(venv + "/"), where.stdout + where.stderr)
        for name in NAMES:
            mode = os.stat(os.path.join(bin_dir, name)).st_mode
            self.assertEqual(mode & 0o555, 0o555, name)
            self.assertFalse(mode & (stat.S_IWGRP | stat.S_IWOTH), name)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYMTA_PYTHON": python}
        done = subprocess.run(["sh", "-c", "except false; echo $?; except true; echo $?"], env=env, cwd="/",
                              capture_output=True, text=True, timeout=120)
        self.assertEqual((done.stdout, done.stderr), ("0\n100\n", ""))
