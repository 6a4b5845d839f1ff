# -*- test-case-name: tests.cli.test_certreload -*-
"""
Reload every running daemon of one pymta root, after C{pymta cert install}.

Where each daemon is found:

  - under systemd (the units C{pymta deploy} writes run twistd with
    C{--pidfile=}, so there is no pid file): every active unit of
    L{PYMTA_UNITS} whose C{PYMTA_ROOT} is this root gets
    C{systemctl reload UNIT} (its C{ExecReload=} sends C{SIGHUP});
  - otherwise pymta-send or the all-in-one C{twistd pymta}: C{pymta ctl
    reload} over C{ROOT/run/ctl.sock} (the all-in-one then reloads its
    smtpd and pop3d too); pymta-send writes C{ROOT/run/pymta-send.pid},
    which C{pymta ctl} falls back to;
  - a separately started pymta-smtpd or pymta-pop3d has a pid file only
    when twistd was given C{--pidfile FILE}: each such file named with
    C{--pidfile} gets C{SIGHUP}.

A daemon reloads the certificate only after its configuration check
passes, and keeps the old one when the new cannot be loaded.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Callable

__all__ = ["PYMTA_UNITS", "Outcome", "systemd_units_for", "reload_systemd", "reload_ctl", "signal_pid_file", "reload_all"]

PYMTA_UNITS = ("pymta.service", "pymta-send.service", "pymta-smtpd.service", "pymta-pop3d.service")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Outcome:
    """One daemon (or unit) and what its reload did: C{ok}, and a line for the operator."""

    target: str
    ok: bool
    text: str


def _run(argv: list[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def unit_root(environment: str) -> str | None:
    """C{PYMTA_ROOT} in the value of C{systemctl show -p Environment --value UNIT}."""
    for word in environment.split():
        if word.startswith("PYMTA_ROOT="):
            return word[len("PYMTA_ROOT="):]
    return None


def systemd_units_for(root: str, run: Runner = _run) -> list[str]:
    """The active pymta units whose C{PYMTA_ROOT} is C{root} (none without systemd)."""
    if not _systemd_running():
        return []
    units = []
    for unit in PYMTA_UNITS:
        if run(["systemctl", "is-active", "--quiet", unit]).returncode != 0:
            continue
        shown = run(["systemctl", "show", "--property=Environment", "--value", unit])
        if shown.returncode == 0 and unit_root(shown.stdout) == root:
            units.append(unit)
    return units


def reload_systemd(units: list[str], run: Runner = _run) -> list[Outcome]:
    outcomes = []
    for unit in units:
        done = run(["systemctl", "reload", unit])
        text = (done.stderr or done.stdout).strip().splitlines()
        outcomes.append(Outcome(unit, done.returncode == 0,
                                "systemctl reload: done" if done.returncode == 0
                                else f"systemctl reload failed: {text[0] if text else done.returncode}"))
    return outcomes


def reload_ctl(root: str) -> Outcome | None:
    """C{pymta ctl reload} for pymta-send / the all-in-one; None when neither runs for C{root}."""
    from pymta.cli import ctl

    run_dir = os.path.join(root, "run")
    if not any(os.path.exists(os.path.join(run_dir, name)) for name in ("ctl.sock", "pymta-send.pid")):
        return None
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = ctl.main(["--root", root, "reload"])
    said = (err.getvalue() or out.getvalue()).strip().replace("\n", "; ")
    return Outcome("pymta-send (pymta ctl reload)", status == ctl.EXIT_OK,
                   "reloaded" if status == ctl.EXIT_OK else said or f"exit {status}")


def signal_pid_file(path: str) -> Outcome:
    """C{SIGHUP} to the process named in the pid file C{path}."""
    try:
        with open(path) as f:
            pid = int(f.read(32).strip())
        if pid <= 1:
            raise ValueError(f"pid {pid}")
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as e:
        return Outcome(path, False, f"not signalled: {getattr(e, 'strerror', None) or e}")
    return Outcome(path, True, f"SIGHUP sent to pid {pid}")


def reload_all(root: str, pid_files: list[str], run: Runner = _run) -> list[Outcome]:
    """Reload what runs for C{root} (module docstring); an empty list when nothing does."""
    units = systemd_units_for(root, run)
    outcomes = reload_systemd(units, run)
    if not units:
        ctl_outcome = reload_ctl(root)
        if ctl_outcome is not None:
            outcomes.append(ctl_outcome)
    outcomes += [signal_pid_file(path) for path in pid_files]
    return outcomes
