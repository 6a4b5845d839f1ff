"""
A wheel built from this tree carries the LICENSE, the .tac files and the
systemd units, and C{pymta deploy} works from it once installed in a fresh
venv.  No network: the wheel is built with this venv's setuptools
(C{--no-build-isolation}) and installed with C{--no-deps --no-index}.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from pymta.deploy.files import EXAMPLE_FILES, TAC_FILES, UNIT_FILES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEP_TIMEOUT = 300
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "_trial_temp*", "build", "dist", "*.egg-info",
                                     "__pycache__", "var")


def run(argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Without PYTHONPATH (trial -j sets it to this checkout, which would hide the installed copy)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYMTA_ROOT")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT, cwd=cwd, env=env)


def copy_source(target: str) -> None:
    """The files git tracks (in a checkout), else the tree without build and test leftovers."""
    listed = None
    if shutil.which("git") and os.path.exists(os.path.join(REPO, ".git")):
        listed = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached"],
                                capture_output=True, timeout=60)
    if listed is None or listed.returncode != 0:
        shutil.copytree(REPO, target, ignore=_NOT_SOURCE)
        return
    for name in listed.stdout.decode().split("\0"):
        path = os.path.join(REPO, name)
        if name and os.path.isfile(path) and not os.path.islink(path):
            os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
            shutil.copy2(path, os.path.join(target, name))


_built: dict[str, str] = {}


def built_wheel() -> tuple[str, str]:
    """(work directory, wheel path), built once per test process (trial has no class fixtures)."""
    if not _built:
        try:
            import setuptools
            import wheel  # noqa: F401  (bdist_wheel of older setuptools)
        except ImportError as e:
            raise SkipTest(f"{e.name} is not installed here (make venv installs the test extras)")
        if int(setuptools.__version__.split(".")[0]) < 68:
            raise SkipTest(f"setuptools {setuptools.__version__} is older than pyproject.toml asks (68)")
        work = tempfile.mkdtemp(prefix="pymta-wheel-")
        atexit.register(shutil.rmtree, work, True)
        source = os.path.join(work, "source")
        copy_source(source)  # the build must not write into the checkout
        built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                     "--wheel-dir", os.path.join(work, "dist"), source])
        if built.returncode != 0:
            raise AssertionError(f"pip wheel failed:\n{built.stdout}\n{built.stderr}")
        (name,) = os.listdir(os.path.join(work, "dist"))
        _built.update(work=work, wheel=os.path.join(work, "dist", name))
    return _built["work"], _built["wheel"]


class WheelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.work, self.wheel = built_wheel()

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as z:
            return z.namelist()

    def test_deploy_files_in_the_wheel(self) -> None:
        names = self.names()
        for name in TAC_FILES + EXAMPLE_FILES:
            self.assertIn(f"pymta/deploy/tac/{name}", names)
        for name in UNIT_FILES:
            self.assertIn(f"pymta/deploy/systemd/{name}", names)
        self.assertIn("pymta/deploy/certbot/pymta", names)
        with zipfile.ZipFile(self.wheel) as z, open(os.path.join(REPO, "pymta", "deploy", "tac", "send.tac"), "rb") as f:
            self.assertEqual(z.read("pymta/deploy/tac/send.tac"), f.read())

    def test_license_in_the_wheel(self) -> None:
        licenses = [n for n in self.names() if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")]
        self.assertEqual(len(licenses), 1, self.names())
        with zipfile.ZipFile(self.wheel) as z, open(os.path.join(REPO, "LICENSE"), "rb") as f:
            text = z.read(licenses[0])
            self.assertEqual(text, f.read())
            metadata = z.read(next(n for n in self.names() if n.endswith(".dist-info/METADATA"))).decode()
        self.assertIn(b"MIT License", text)
        self.assertIn(b"Copyright (c) 2026 the pymta authors", text)
        self.assertRegex(metadata, r"(?m)^License(-Expression)?: MIT$")

    def test_installed_in_a_fresh_venv(self) -> None:
        venv = os.path.join(self.work, "fresh")
        self.addCleanup(shutil.rmtree, venv, True)
        made = run([sys.executable, "-m", "venv", "--without-pip", venv])
        self.assertEqual(made.returncode, 0, made.stderr)
        python = os.path.join(venv, "bin", "python")
        installed = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                         "--quiet", self.wheel])
        self.assertEqual(installed.returncode, 0, installed.stderr)
        pymta = os.path.join(venv, "bin", "pymta")

        done = run([pymta, "--version"], cwd="/")
        self.assertEqual((done.returncode, done.stdout), (0, "pymta 0.1.0\n"), done.stderr)

        where = run([python, "-c", "import pymta.deploy; print(pymta.deploy.__file__)"], cwd="/")
        self.assertTrue(where.stdout.startswith(venv + "/"), where.stdout + where.stderr)

        # no twistd in this venv (installed without dependencies): said so, with the fix
        done = run([pymta, "deploy", "--show", "pymta-send.service"], cwd="/")
        self.assertEqual(done.returncode, 1)
        self.assertIn("no twistd in ", done.stderr)
        self.assertIn("give its path with --twistd PATH", done.stderr)

        target = os.path.join(self.work, "written")
        done = run([pymta, "deploy", "--twistd", "/opt/pymta/bin/twistd", "--root", "/srv/mail",
                    "--tac-dir", os.path.join(target, "tac"), "--unit-dir", os.path.join(target, "units")],
                   cwd="/")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(target, "tac"))), sorted(TAC_FILES))
        with open(os.path.join(target, "units", "pymta-send.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/opt/pymta/bin/twistd --nodaemon --pidfile= --logfile=- -y "
                      f"{target}/tac/send.tac\n", unit)
        self.assertIn("ReadWritePaths=/srv/mail -/home\n", unit)

        done = run([pymta, "cert", "hook", "--root", "/srv/mail"], cwd="/")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"exec {pymta} cert install --root /srv/mail --only-for-me", done.stdout)
