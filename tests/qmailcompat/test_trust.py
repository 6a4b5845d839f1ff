"""pymta.qmailcompat.trust: what root may trust before its cron jobs run the compat scripts (root only)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from twisted.trial import unittest

from pymta.qmailcompat.trust import directory_problem, import_paths, path_problem, runtime_problems


class TrustTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("judges ownership by root: run as root")
        self.base = tempfile.mkdtemp(prefix="pymta-trust-")
        self.addCleanup(shutil.rmtree, self.base, True)

    def mkdir(self, *parts: str, mode: int = 0o755) -> str:
        path = os.path.join(self.base, *parts)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        return path

    def fake_python(self, package: str, path: list[str]) -> str:
        """An interpreter that answers the probe with C{package} and C{path}."""
        python = os.path.join(self.base, "python")
        with open(python, "w") as f:
            f.write(f"#!/bin/sh\necho '{json.dumps([python, package, path])}'\n")
        os.chmod(python, 0o755)
        return python

    def test_owner_and_mode(self) -> None:
        good, loose = self.mkdir("good"), self.mkdir("loose", mode=0o775)
        sticky = self.mkdir("sticky", mode=0o1777)
        self.assertIsNone(path_problem(good))
        self.assertEqual(path_problem(loose), f"{loose} is writable by others than root (mode 0775)")
        self.assertEqual(path_problem(sticky), f"{sticky} is writable by others than root (mode 1777)")
        self.assertIsNone(path_problem(sticky, ancestor=True))  # nobody else can rename what is in it
        os.chown(good, 1, 0)
        self.assertEqual(path_problem(good), f"{good} is owned by uid 1, not root")
        self.assertEqual(directory_problem(self.mkdir("good", "in")), f"{good} is owned by uid 1, not root")
        self.assertIsNone(directory_problem(self.mkdir("sticky", "in")))

    def test_this_interpreter_is_probed_as_the_scripts_run_it(self) -> None:
        executable, package, path = import_paths(sys.executable)
        import pymta
        self.assertEqual(package, os.path.dirname(os.path.abspath(pymta.__file__)))
        self.assertNotIn(os.getcwd(), path[:1])  # -P: no script directory or cwd first

    def test_the_package_tree_and_every_import_directory_are_judged(self) -> None:
        package = self.mkdir("site", "pymta")
        module = os.path.join(package, "mod.py")
        with open(module, "w") as f:
            f.write("")
        site, loose = self.mkdir("site"), self.mkdir("loose", mode=0o777)
        missing = os.path.join(loose, "python311.zip")
        python = self.fake_python(package, [site, os.path.join(self.base, "gone", "x")])
        self.assertEqual(runtime_problems(python), [])
        python = self.fake_python(package, [site, missing])  # whoever may write in loose/ can make it
        self.assertEqual(runtime_problems(python), [f"{loose} is writable by others than root (mode 0777)"])
        os.chmod(module, 0o666)
        os.chmod(site, 0o775)
        problems = runtime_problems(python)
        self.assertIn(f"{module} is writable by others than root (mode 0666)", problems)
        self.assertIn(f"{site} is writable by others than root (mode 0775)", problems)

    def test_an_interpreter_without_pymta(self) -> None:
        python = os.path.join(self.base, "python")
        with open(python, "w") as f:
            f.write("#!/bin/sh\necho 'ModuleNotFoundError: No module named pymta' >&2\nexit 1\n")
        os.chmod(python, 0o755)
        self.assertEqual(runtime_problems(python), [f"{python} cannot import pymta: ModuleNotFoundError: No module named pymta"])
