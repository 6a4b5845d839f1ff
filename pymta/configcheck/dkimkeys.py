# -*- test-case-name: tests.configcheck.test_dkimkeys -*-
"""
The key files of C{control/dkimkeys} as the daemons judge them
(L{pymta.dkim.keys.load_signing_keys}): each one a regular file of mode
0600 owned by the mail account (or 0640 root and the mail account's
group), and a key DKIM can sign with.  One problem per bad entry, on its
line of control/dkimkeys.  The text of the file is checked with the other
control files (L{pymta.extracontrols}); a key file this process may not
read (C{pymta check} run by another user) is judged by its mode and owner
only.
"""

from __future__ import annotations

import os
from typing import Iterator

from pymta.configcheck.problem import ERROR, CheckContext, Problem
from pymta.control import ControlError, ControlLines

__all__ = ["check_dkimkeys"]


def check_dkimkeys(ctx: CheckContext) -> Iterator[Problem]:
    """Each key file of control/dkimkeys: mode, owner, and a usable key."""
    from pymta.dkim.keys import NAME, key_entries, read_key
    from pymta.secretfile import secret_file_problem

    controls = ctx.controls
    if controls is None:
        return
    try:
        entries = key_entries(controls)
    except ControlError:
        return  # reported with the control files
    lines = controls.extra_lines(NAME)
    path = controls.path(NAME)
    for index, entry in enumerate(entries):
        lineno = lines.linenos[index] if isinstance(lines, ControlLines) else index + 1
        problem = secret_file_problem(entry.path, ctx.account, "the private key")
        if problem is None and os.access(entry.path, os.R_OK):
            try:
                with open(entry.path, "rb") as f:
                    read_key(f.read(64 * 1024))
            except OSError as e:
                problem = f"cannot read it: {e.strerror}"
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            yield Problem(path, lineno, ERROR, f"key file {entry.path}: {problem}")
