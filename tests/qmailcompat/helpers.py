"""
The real compatibility directory for a test: Debian's fastforward and
dot-forward run C{/var/lib/qmail/bin/qmail-queue} (they predate
C{QMAILQUEUE}), so their tests need pymta's programs at that very path.

Test processes of one run (trial -j) share the machine: L{real_compat_dir}
holds an exclusive lock for the whole test, installs, and at cleanup removes
what it made and lets the next test in.
"""

from __future__ import annotations

import fcntl
import os

from twisted.trial import unittest

from pymta.qmailcompat.install import MANIFEST, install, remove

__all__ = ["DEBIAN_HOME", "hold_real_paths", "real_compat_dir"]

#: qmail's home in Debian's builds of qmail's add-ons
DEBIAN_HOME = "/var/lib/qmail"
_LOCK = "/tmp/pymta-tests-qmail-compat.lock"


def hold_real_paths(testcase: unittest.SynchronousTestCase) -> None:
    """Take the machine-wide lock on qmail's real paths until C{testcase} ends (skip unless root)."""
    if os.getuid() != 0:
        raise unittest.SkipTest("needs root: qmail's paths (/var/lib/qmail/bin) belong to root")
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    testcase.addCleanup(os.close, fd)
    fcntl.flock(fd, fcntl.LOCK_EX)
    testcase.addCleanup(fcntl.flock, fd, fcntl.LOCK_UN)


def real_compat_dir(testcase: unittest.SynchronousTestCase, root: str, python: str) -> str:
    """pymta's programs in C{/var/lib/qmail/bin} for C{root}, on C{python}, until C{testcase} ends; the directory."""
    hold_real_paths(testcase)
    queue = os.path.join(DEBIAN_HOME, "bin", "qmail-queue")
    if os.path.exists(os.path.join(DEBIAN_HOME, MANIFEST)) or os.path.lexists(queue):
        raise unittest.SkipTest(f"{queue} is already there (a qmail, or a compatibility directory left behind)")
    testcase.addCleanup(remove, [DEBIAN_HOME])
    install(root, [DEBIAN_HOME], python=python)
    return DEBIAN_HOME
