"""
pymta.heldimports: after dropping root, modules below a directory the new
uid cannot enter are still imported, in real child processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from pymta.heldimports import HeldDirectoryFinder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534

CHILD = textwrap.dedent(
    """
    import os, sys
    private, hold = sys.argv[1], sys.argv[2] == "hold"
    sys.path.insert(0, private)
    import pkg  # imported as root, its submodules only later
    from pymta.heldimports import hold_import_directories
    if len(sys.argv) > 3:  # the extension module must come from the private copy
        sys.path[:] = [p for p in sys.path if not p.endswith("lib-dynload")]
    if hold:
        hold_import_directories()
    os.setgroups([65534]); os.setgid(65534); os.setuid(65534)
    try:
        open(os.path.join(private, "pkg", "lazy.py")).close()
    except PermissionError:
        pass
    else:
        raise SystemExit("the private directory is reachable: the test proves nothing")
    try:
        import pkg.lazy, toplevel
    except ImportError as e:
        print("ImportError", type(e).__name__)
        raise SystemExit(0)
    print(pkg.lazy.VALUE, toplevel.VALUE, pkg.lazy.__file__.startswith("/proc/self/fd/"))
    if len(sys.argv) > 3:
        import {ext}
        print({ext}.__file__.startswith("/proc/self/fd/"))
    """
)


class DropTests(SynchronousTestCase):
    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (drops to uid 65534)")
        self.base = tempfile.mkdtemp(prefix="pymta-held-")  # 0700: only root may enter
        self.addCleanup(shutil.rmtree, self.base, True)
        self.private = os.path.join(self.base, "code")
        os.makedirs(os.path.join(self.private, "pkg"))
        for name, text in (("pkg/__init__.py", ""), ("pkg/lazy.py", "VALUE = 'lazy'\n"), ("toplevel.py", "VALUE = 'top'\n")):
            with open(os.path.join(self.private, name), "w") as f:
                f.write(text)
        for dirpath, dirnames, filenames in os.walk(self.private):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)

    def child(self, *args: str, ext: str = "") -> str:
        env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
        # run from a directory the dropped child may enter
        proc = subprocess.run(
            [sys.executable, "-c", CHILD.replace("{ext}", ext or "x"), self.private, *args],
            capture_output=True, text=True, env=env, cwd="/", timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stdout

    def test_without_holding_the_import_fails(self) -> None:
        self.assertEqual(self.child("plain"), "ImportError ModuleNotFoundError\n")

    def test_held_directories_import_after_the_drop(self) -> None:
        self.assertEqual(self.child("hold"), "lazy top True\n")

    def test_extension_module(self) -> None:
        import _decimal

        source = getattr(_decimal, "__file__", None)
        if not source or not source.endswith(".so"):
            raise self.skipTest("_decimal is built into this Python")
        shutil.copy(source, os.path.join(self.private, os.path.basename(source)))
        os.chmod(os.path.join(self.private, os.path.basename(source)), 0o644)
        self.assertEqual(self.child("hold", "ext", ext="_decimal"), "lazy top True\nTrue\n")


class FinderTests(SynchronousTestCase):
    def test_paths_below_held_directories(self) -> None:
        base = os.path.realpath(self.mktemp())
        os.makedirs(os.path.join(base, "a", "b"))
        finder = HeldDirectoryFinder()
        finder.hold(os.path.join(base, "a"))
        self.addCleanup(os.close, int(finder.held[os.path.join(base, "a")].rsplit("/", 1)[1]))
        through = finder.held[os.path.join(base, "a")]
        self.assertTrue(through.startswith("/proc/self/fd/"))
        self.assertEqual(finder.reachable_path(os.path.join(base, "a", "b")), through + "/b")
        self.assertEqual(finder.reachable_path(os.path.join(base, "a")), through)
        self.assertIsNone(finder.reachable_path(os.path.join(base, "ab")))
        self.assertIsNone(finder.reachable_path(through + "/b"))
        self.assertIsNone(finder.find_spec("surely_no_such_module_here"))
