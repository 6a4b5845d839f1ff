# -*- test-case-name: tests.configcheck.test_controlfiles -*-
"""
The files in C{ROOT/control/}: read by L{pymta.control.load_controls}
(the daemons' own reader) with every complaint it has, names it does not
know, blanks it keeps, and an open relay.

L{load_every_control} finds all the complaints of a reader that stops at
the first one: it reads a private copy of C{control/} (in a temporary
directory; without one, only the first complaint is found), and after each
error blanks the line named (or drops the file, for an error on no
particular line) and reads again.

Blanks: every reader removes blanks at the end of a line, and numbers are
read without the blanks around them, so those are harmless.  A blank at the
start of an entry of a list or host-name file, or next to the colon of a
C{virtualdomains} key, stays part of the entry: the entry then never
matches (C{ example.com} in rcpthosts), so that is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import stat
import tempfile
from typing import Iterable, Iterator

from pymta.cli.showctl import EXTRA_FILES
from pymta.control import HOST, LIST, MAP, ORDERED, SPECS, TEXT, ControlError, Controls, load_controls
from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem

__all__ = ["load_every_control", "check_control_files", "known_control_names"]

#: MAP files whose values are used with their blanks (smtproutes strips them)
_VALUE_KEEPS_BLANKS = frozenset({"virtualdomains"})


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
            return load_controls(root), problems
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
                controls = load_controls(scratch)
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


def _lines(path: str) -> list[str] | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").split("\n")
    except OSError:
        return None


def _entries(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, line without its line end) for every line a list reader takes as an entry."""
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip(" \t\r")
        if line and not line.startswith("#"):
            yield lineno, line


def _blank_problems(path: str, kind: str, name: str) -> Iterator[Problem]:
    lines = _lines(path)
    if not lines:
        return
    if kind in (HOST, TEXT):
        first = lines[0].rstrip(" \t\r")
        if first and first != first.lstrip():
            yield Problem(path, 1, ERROR, f"blank at the start of {first.strip()!r}: it would be used with the blank")
        return
    for lineno, line in _entries(lines):
        if line != line.lstrip():
            yield Problem(path, lineno, ERROR, f"blank at the start of {line.strip()!r}: this entry never matches")
            continue
        if kind == MAP and ":" in line:
            key, value = line.split(":", 1)
            if key != key.rstrip():
                yield Problem(path, lineno, ERROR, f"blank before the colon: the key {key!r} never matches")
            elif name in _VALUE_KEEPS_BLANKS and value != value.lstrip():
                yield Problem(path, lineno, ERROR, f"blank after the colon: {value!r} is used with the blank")


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
    """Broken lines, unknown names, blanks that matter, and an open relay."""
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
    broken = {(p.path, p.line) for p in ctx.control_problems}
    for spec in SPECS:
        if spec.name in present and spec.kind in (HOST, TEXT, LIST, MAP, ORDERED):
            for problem in _blank_problems(os.path.join(controldir, spec.name), spec.kind, spec.name):
                if (problem.path, problem.line) not in broken:
                    yield problem
    if ctx.controls is not None and ctx.controls.rcpthosts is None:
        yield Problem(os.path.join(controldir, "rcpthosts"), 0, WARNING,
                      "absent: OPEN RELAY: pymta-smtpd accepts mail for every domain from every client; "
                      "write the domains this host accepts mail for into it")
    if "morercpthosts.cdb" in present:
        yield Problem(os.path.join(controldir, "morercpthosts.cdb"), 0, WARNING,
                      "not used: pymta reads morercpthosts (the text file) directly")
