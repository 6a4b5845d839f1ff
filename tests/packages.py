"""
Debian packages that integration tests need (postfix, fetchmail, getmail6...).

A test that needs a real peer calls L{ensure_program}: when the program is
missing and the suite runs as root on a Debian machine (as CI does), the
package is installed once per test run (C{apt-get update} first if the plain
install fails, as on a fresh machine with empty package lists); otherwise
the test skips with the returned reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["ensure_program", "ensure_perl_module", "ensure_debian_python_module", "DEBIAN_PYTHON"]

#: Debian's Python, which Debian's python3-* packages install modules for (not the venv's)
DEBIAN_PYTHON = "/usr/bin/python3"

_tried: dict[str, bool] = {}


def _apt(*args: str, preseed: str | None = None) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        if preseed:
            subprocess.run(["debconf-set-selections"], input=preseed.encode(), env=env,
                           capture_output=True, timeout=60, check=False)
        done = subprocess.run(["apt-get", *args], env=env, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_program(program: str, package: str, preseed: str | None = None) -> str | None:
    """The path of C{program} (a name on PATH or an absolute path), installing C{package} if needed."""
    def find() -> str | None:
        if os.path.isabs(program):
            return program if os.access(program, os.X_OK) else None
        return shutil.which(program)

    path = find()
    if path or os.getuid() != 0 or not shutil.which("apt-get"):
        return path
    if package not in _tried:
        _tried[package] = True
        install = ("install", "-y", "-q", "--no-install-recommends", package)
        if not _apt(*install, preseed=preseed):
            _apt("update", "-q")
            _apt(*install, preseed=preseed)
    return find()


def ensure_perl_module(module: str, package: str) -> bool:
    """True when perl can load C{module}, installing C{package} (as L{ensure_program} does) when it cannot."""
    def loads() -> bool:
        perl = shutil.which("perl")
        if perl is None:
            return False
        try:
            return subprocess.run([perl, f"-M{module}", "-e", "1"], capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    if loads() or os.getuid() != 0 or not shutil.which("apt-get"):
        return loads()
    if package not in _tried:
        _tried[package] = True
        install = ("install", "-y", "-q", "--no-install-recommends", package)
        if not _apt(*install):
            _apt("update", "-q")
            _apt(*install)
    return loads()


def ensure_debian_python_module(module: str, package: str) -> str | None:
    """
    L{DEBIAN_PYTHON} when it can import C{module}, installing C{package}
    (as L{ensure_program} does) when it cannot; None otherwise.  The module
    is for programs the tests run with that interpreter, not for the venv.
    """
    def loads() -> bool:
        if not os.access(DEBIAN_PYTHON, os.X_OK):
            return False
        try:
            return subprocess.run([DEBIAN_PYTHON, "-c", f"import {module}"], capture_output=True,
                                  timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    if not loads() and os.getuid() == 0 and shutil.which("apt-get") and package not in _tried:
        _tried[package] = True
        install = ("install", "-y", "-q", "--no-install-recommends", package)
        if not _apt(*install):
            _apt("update", "-q")
            _apt(*install)
    return DEBIAN_PYTHON if loads() else None
