# -*- test-case-name: tests.configcheck.test_controlfiles -*-
"""
The files in C{ROOT/control/}: read by the daemons' own parsers
(L{pymta.control.load_controls} for qmail's files, L{pymta.extracontrols}
for pymta's extra ones) with every complaint they have, names pymta does
not know, and an open relay.

L{load_every_control} finds all the complaints of parsers that stop at
the first one: it reads a private copy of C{control/} (in a temporary
directory; without one, only the first complaint is found), and after each
error blanks the line named (or drops the file, for an error on no
particular line) and reads again.

The parsers are the only judges of a line: a blank that would make an
entry never match (C{ example.com} in rcpthosts, C{a.example :alice} in
virtualdomains) is their error, and blanks at the end of a line are
removed by every reader, so nothing here looks at blanks itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import stat
import tempfile
from typing import Iterator

from pymta.cli.showctl import EXTRA_FILES
from pymta.control import SPECS, ControlError, Controls, load_controls
from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem
from pymta.extracontrols import check_extra_controls

__all__ = ["load_every_control", "check_control_files", "known_control_names"]


def known_control_names() -> frozenset[str]:
    """Every control file name pymta reads: qmail's (L{SPECS}) and pymta's extra ones."""
    return frozenset(spec.name for spec in SPECS) | frozenset(EXTRA_FILES)


def _blank(data: bytes, lineno: int) -> bytes | None:
    """C{data} with line C{lineno} emptied; None when there is no such line or it is empty."""
    lines = data.split(b"\n")
    if not 0 < lineno <= len(lines) or not lines[lineno - 1]:
        return None
    lines[lineno - 1] = b""
    return b"\n".join(lines)


def _read_controls(root: str) -> Controls:
    """The controls of C{root} as a daemon reads them: every file through its parser."""
    controls = load_controls(root)
    check_extra_controls(controls)
    return controls


def load_every_control(root: str) -> tuple[Controls | None, list[Problem]]:
    """
    The controls of C{root} as the daemons read them, every broken line
    left out, and a problem for each broken line (or unreadable file).
    Controls are None when C{control/} itself cannot be listed.
    """
    controldir = os.path.join(root, "control")
    problems: list[Problem] = []
    try:
        names = sorted(os.listdir(controldir))
    except FileNotFoundError:
        names = []
    except OSError as e:
        return None, [Problem(controldir, 0, ERROR, f"cannot list it: {e.strerror}")]
    try:
        scratch_dir = tempfile.TemporaryDirectory(prefix="pymta-check-")
    except OSError:  # no writable temporary directory: the first error only
        try:
            return _read_controls(root), problems
        except ControlError as e:
            return None, problems + [Problem(e.path, e.lineno, ERROR, e.reason)]
        except OSError as e:
            return None, problems + [Problem(str(e.filename or controldir), 0, ERROR, f"cannot read it: {e.strerror}")]
    with scratch_dir as scratch:
        copy = os.path.join(scratch, "control")
        os.mkdir(copy)
        for name in names:
            source = os.path.join(controldir, name)
            try:
                if not stat.S_ISREG(os.stat(source).st_mode):
                    continue
                shutil.copyfile(source, os.path.join(copy, name))
            except OSError as e:
                problems.append(Problem(source, 0, ERROR, f"cannot read it: {e.strerror}"))
        for _ in range(sum(_size_in_lines(os.path.join(copy, n)) for n in os.listdir(copy)) + len(names) + 1):
            try:
                controls = _read_controls(scratch)
            except ControlError as e:
                name = os.path.relpath(e.path, copy)
                if name.startswith(os.pardir) or os.sep in name:
                    problems.append(Problem(e.path, e.lineno, ERROR, e.reason))
                    return None, problems
                problems.append(Problem(os.path.join(controldir, name), e.lineno, ERROR, e.reason))
                _leave_out(os.path.join(copy, name), e.lineno)
                continue
            return dataclasses.replace(controls, controldir=controldir), problems
    return None, problems


def _size_in_lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n") + 1


def _leave_out(path: str, lineno: int) -> None:
    """Blank line C{lineno} of the copy at C{path}, or remove the copy when that changes nothing."""
    with open(path, "rb") as f:
        data = f.read()
    blanked = _blank(data, lineno)
    if blanked is None:
        os.unlink(path)
        return
    with open(path, "wb") as f:
        f.write(blanked)


def _unknown_name(controldir: str, name: str, present: set[str], known: frozenset[str]) -> Problem:
    path = os.path.join(controldir, name)
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    if close and close[0] not in present:
        return Problem(path, 0, ERROR,
                       f"unknown control file; did you mean {close[0]}? (pymta reads no file of this name, "
                       f"and control/{close[0]} is absent)")
    if close:
        return Problem(path, 0, WARNING, f"unknown control file (pymta does not read it); did you mean {close[0]}?")
    return Problem(path, 0, WARNING, "unknown control file (pymta does not read it)")


def check_control_files(ctx: CheckContext) -> Iterator[Problem]:
    """Broken lines (L{load_every_control}), unknown names, and an open relay."""
    controldir = ctx.path("control")
    yield from ctx.control_problems
    try:
        present = set(os.listdir(controldir))
    except OSError:
        return
    known = known_control_names()
    for name in sorted(present - known):
        if not name.startswith("."):
            yield _unknown_name(controldir, name, present, known)
    if ctx.controls is not None and ctx.controls.rcpthosts is None:
        yield Problem(os.path.join(controldir, "rcpthosts"), 0, WARNING,
                      "absent: OPEN RELAY: pymta-smtpd accepts mail for every domain from every client; "
                      "write the domains this host accepts mail for into it")
    if "morercpthosts.cdb" in present:
        yield Problem(os.path.join(controldir, "morercpthosts.cdb"), 0, WARNING,
                      "not used: pymta reads morercpthosts (the text file) directly")
