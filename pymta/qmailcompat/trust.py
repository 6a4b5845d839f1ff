# -*- test-case-name: tests.qmailcompat.test_trust -*-
"""
What root may trust when it installs the compatibility directory.

The scripts of C{bin/} are run by root (cron jobs, add-ons run as root),
so everything they are made of must be root's alone:

- L{directory_problem}: a target (qmail's home) and its C{bin/}, where
  root writes, and every directory above them: owned by root, writable by
  nobody else (an ancestor may be a root-owned directory with the sticky
  bit, as C{/tmp}: nobody else can rename or remove what is in it);
- L{runtime_problems}: the interpreter the scripts name, every directory
  it imports from (its C{sys.path} under C{-P}, as the scripts run it) and
  the whole C{pymta} package tree: owned by root, writable by nobody else,
  the directories above them as above.

Each returns what is wrong, one line a path; C{pymta qmail-compat
install} refuses (nothing written) when run as root and any is found.
The interpreter is asked (a child process) where it imports from, so the
answer is the scripts' own, also for another interpreter than this one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

__all__ = ["directory_problem", "runtime_problems", "path_problem", "ancestor_problems", "import_paths"]

_PROBE = ("import json, os, sys, pymta; "
          "print(json.dumps([sys.executable, os.path.dirname(os.path.abspath(pymta.__file__)), sys.path]))")


def path_problem(path: str, *, ancestor: bool = False) -> str | None:
    """Why root may not trust C{path} (followed if a symbolic link), or None; C{ancestor}: a sticky root directory is fine."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path}: cannot check it: {e.strerror}"
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != 0:
        return f"{path} is owned by uid {st.st_uid}, not root"
    if mode & 0o022 and not (ancestor and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX):
        return f"{path} is writable by others than root (mode {mode:04o})"
    return None


def ancestor_problems(path: str) -> list[str]:
    """L{path_problem} of each existing directory above C{path}'s real path (C{/} included)."""
    problems = []
    current = os.path.dirname(os.path.realpath(path))
    while True:
        problem = path_problem(current, ancestor=True) if os.path.lexists(current) else None
        if problem is not None:
            problems.append(problem)
        parent = os.path.dirname(current)
        if parent == current:
            return problems
        current = parent


def directory_problem(path: str) -> str | None:
    """The first reason root may not write into the directory C{path} (see the module docstring), or None."""
    problems = [p for p in (path_problem(path),) if p is not None] + ancestor_problems(path)
    return problems[0] if problems else None


def import_paths(python: str) -> tuple[str, str, list[str]]:
    """C{(executable, pymta's package directory, sys.path)} of C{python} run as the scripts run it; L{OSError}."""
    try:
        done = subprocess.run([python, "-P", "-c", _PROBE], capture_output=True, text=True, timeout=120,
                              env={"PATH": os.defpath, "LC_ALL": "C"}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OSError(f"{python} did not answer") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"{python} cannot import pymta: {last}")
    executable, package, path = json.loads(done.stdout)
    return executable, package, [p for p in path if p]


def _tree_problems(top: str) -> list[str]:
    problems = []
    for directory, dirs, files in os.walk(top):
        for name in [directory] + [os.path.join(directory, f) for f in files]:
            try:
                st = os.lstat(name)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):  # what it points at is judged where it lives, if imported from there
                continue
            problem = path_problem(name)
            if problem is not None:
                problems.append(problem)
        dirs.sort()
    return problems


def runtime_problems(python: str) -> list[str]:
    """Why root's cron jobs must not run C{python} with pymta (see the module docstring); [] when all is root's."""
    try:
        executable, package, path = import_paths(python)
    except OSError as e:
        return [str(e)]
    problems: list[str] = []
    for program in dict.fromkeys((python, executable, os.path.realpath(python))):
        for problem in [path_problem(program)] + ancestor_problems(program):
            if problem is not None and problem not in problems:
                problems.append(problem)
    for entry in path:  # a missing entry (a python3NN.zip) could be made by whoever may write above it
        here = [path_problem(entry)] if os.path.exists(entry) else []
        for problem in here + ancestor_problems(entry):
            if problem is not None and problem not in problems:
                problems.append(problem)
    problems.extend(p for p in _tree_problems(package) if p not in problems)
    return problems
