# -*- test-case-name: tests.deploy.test_writer -*-
"""
Writing files without overwriting what an administrator changed.

L{plan} compares each target with the content to write: C{new} (absent),
C{same} (identical: nothing to do) or C{changed}.  L{write} refuses the
whole set, before writing anything, when one target is C{changed} and
C{force} is false, so a second C{pymta deploy} never silently undoes a local
edit; with C{force} it replaces them.  Each file is written to a temporary
name in its directory and renamed over the target, so a reader (systemd, a
starting twistd) sees the old or the new file, never half of one.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from typing import Literal

from pymta.deploy.files import DeployError
from pymta.fsutil import replace_file

__all__ = ["Planned", "plan", "write", "diff", "FILE_MODE", "DIR_MODE"]

FILE_MODE = 0o644
DIR_MODE = 0o755

State = Literal["new", "same", "changed"]


@dataclass(frozen=True)
class Planned:
    path: str
    content: bytes
    state: State
    current: bytes | None = None  # what the target holds now, when it exists


def _current(path: str) -> bytes | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise DeployError(f"{path}: exists and is not a regular file")
    with open(path, "rb") as f:
        return f.read()


def plan(files: dict[str, bytes]) -> list[Planned]:
    """What writing C{files} (path -> content) would do, in path order."""
    planned = []
    for path in sorted(files):
        content = files[path]
        current = _current(path)
        state: State = "new" if current is None else "same" if current == content else "changed"
        planned.append(Planned(path, content, state, current))
    return planned


def diff(item: Planned) -> str:
    """A unified diff from the target's current text to the text to write."""
    before = (item.current or b"").decode("utf-8", "replace").splitlines(keepends=True)
    after = item.content.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, item.path + " (now)", item.path + " (pymta deploy)"))


def _write_one(path: str, content: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=DIR_MODE, exist_ok=True)
    replace_file(path, content, FILE_MODE)


def write(planned: list[Planned], force: bool = False) -> list[Planned]:
    """
    Write every C{new} and C{changed} item (C{changed} only with C{force});
    returns the items written.  L{DeployError} before anything is written when
    a C{changed} item needs C{force}; C{OSError} from the file system as is.
    """
    changed = [p.path for p in planned if p.state == "changed"]
    if changed and not force:
        raise DeployError(f"{', '.join(changed)}: differs from what pymta deploy writes; left alone "
                          "(see the difference with --dry-run, replace with --force)")
    done = []
    for item in planned:
        if item.state != "same":
            _write_one(item.path, item.content)
            done.append(item)
    return done
