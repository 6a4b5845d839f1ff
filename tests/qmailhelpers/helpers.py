"""Running a .qmail helper as local delivery runs it: the script on PATH, the message file on stdin."""

from __future__ import annotations

__all__ = ["MESSAGE", "DELIVERY_ENV", "helper_environment", "run_line"]

import subprocess
import tempfile

from pymta.local.program import base_environment

MESSAGE = b"Subject: hello\nTo: joe@example.org\n\nFrom the start\nsecond line\n"

DELIVERY_ENV = {
    "SENDER": "alice@example.com",
    "NEWSENDER": "alice@example.com",
    "RECIPIENT": "joe-x@example.org",
    "DTLINE": "Delivered-To: joe-x@example.org\n",
    "RPLINE": "Return-Path: <alice@example.com>\n",
    "UFLINE": "From alice@example.com Tue Nov 24 21:49:31 2026\n",
}


def helper_environment(extra: dict[str, str] | None = None, *, delivery: bool = True) -> dict[str, str]:
    """What local delivery gives a program (no PYTHONPATH: the helpers must find pymta without it)."""
    env = base_environment({"PATH": "/usr/bin:/bin"})
    if delivery:
        env.update(DELIVERY_ENV)
    env.update(extra or {})
    return env


def run_line(command: str, *, message: bytes = MESSAGE, env: dict[str, str] | None = None,
             cwd: str | None = None) -> tuple[int, str]:
    """Run C{command} with C{/bin/sh -c} as a .qmail program line: (exit code, stdout+stderr)."""
    with tempfile.TemporaryFile() as f:
        f.write(message)
        f.seek(0)
        done = subprocess.run(["/bin/sh", "-c", command], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=helper_environment() if env is None else env, cwd=cwd, timeout=60)
    return done.returncode, done.stdout.decode("utf-8", "replace")

