"""Shared pieces of the configuration check tests: a fresh root made by pymta init, and file writers."""

from __future__ import annotations

import io
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import init as init_command
from pymta.configcheck import Problem, make_context
from pymta.configcheck.problem import Checker

#: the mail account of roots made as root
MAIL_IDS = (4242, 4242)


def init_root(test: SynchronousTestCase, *users: str) -> str:
    """A root made by C{pymta init} (as root: with mail uid 4242), removed after the test."""
    base = tempfile.mkdtemp(prefix="pymta-check-")
    test.addCleanup(shutil.rmtree, base, True)
    os.chmod(base, 0o755)
    root = os.path.join(base, "root")
    argv = [root, "--me", "mx.example.test"]
    for user in users:
        argv += ["--user", user]
    if os.getuid() == 0:
        argv += ["--mail-uid", f"{MAIL_IDS[0]}:{MAIL_IDS[1]}"]
    test.assertEqual(init_command.main(argv, stdout=io.StringIO(), stderr=io.StringIO()), 0)
    return root


def write(root: str, relpath: str, data: str | bytes, mode: int | None = None) -> str:
    """Write C{data} to ROOT/relpath; returns the path."""
    path = os.path.join(root, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def check(root: str, checker: Checker) -> list[Problem]:
    return list(checker(make_context(root)))


def located(root: str, problems: list[Problem]) -> list[tuple[str, int, str]]:
    """(path relative to root, line, severity) of each problem."""
    return [(os.path.relpath(p.path, root), p.line, p.severity) for p in problems]
