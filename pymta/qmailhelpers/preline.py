# -*- test-case-name: tests.qmailhelpers.test_preline -*-
"""
C{preline [-frdFRD] program [arg ...]}: run C{program} with the message on
its stdin, preceded by the lines local delivery puts into a mailbox file
and leaves out for programs: the C{From } line (C{$UFLINE}), C{Return-Path:}
(C{$RPLINE}) and C{Delivered-To:} (C{$DTLINE}), in that order.

Options: C{-f} leaves out the C{From } line, C{-r} the C{Return-Path:},
C{-d} the C{Delivered-To:}; C{-F}, C{-R}, C{-D} put them back (the last
option about a line wins).  Options end at the first argument that is
not one, or after C{--}.

Exit code: the program's.  Otherwise (each with C{preline: fatal: ...}):
100 for a usage error or when the three variables are not all set (outside
a delivery); 100 or 111 when the program cannot be started (see
L{pymta.qmailhelpers.common}); 111 when the message cannot be read or
written to the program (also when the program exits before reading it
all: C{unable to copy input: broken pipe}, as qmail's preline), or the
program was killed by a signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping

from pymta.qmailhelpers.common import PERMANENT, TEMPORARY, Fatal, exec_failure_code, reason, run_helper

__all__ = ["PrelineOptions", "parse_arguments", "prepended", "main", "USAGE"]

USAGE = "usage: preline [ -frdFRD ] cmd [ arg ... ]"
_CHUNK = 65536


@dataclass(frozen=True)
class PrelineOptions:
    """Which lines to put in front of the message, and the program to run."""

    from_line: bool
    return_path: bool
    delivered_to: bool
    program: tuple[str, ...]


def parse_arguments(argv: list[str]) -> PrelineOptions:
    """The options and program of C{argv}; L{Fatal} (100, usage) when they are wrong or no program is given."""
    keep = {"f": True, "r": True, "d": True}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        for letter in arg[1:]:
            if letter.lower() not in keep:
                raise Fatal(PERMANENT, USAGE)
            keep[letter.lower()] = letter.isupper()
        i += 1
    program = tuple(argv[i:])
    if not program:
        raise Fatal(PERMANENT, USAGE)
    return PrelineOptions(keep["f"], keep["r"], keep["d"], program)


def prepended(options: PrelineOptions, environ: Mapping[bytes, bytes]) -> bytes:
    """The bytes to send before the message; L{Fatal} (100, usage) when a variable is missing, as in qmail."""
    lines = []
    for wanted, name in ((options.from_line, b"UFLINE"), (options.return_path, b"RPLINE"),
                         (options.delivered_to, b"DTLINE")):
        value = environ.get(name)
        if value is None:
            raise Fatal(PERMANENT, USAGE)
        if wanted:
            lines.append(value)
    return b"".join(lines)


def _feed(child: "subprocess.Popen[bytes]", head: bytes) -> None:
    assert child.stdin is not None
    out = child.stdin.fileno()
    try:
        _write_all(out, head)
        while True:
            try:
                data = os.read(0, _CHUNK)
            except OSError as e:
                raise Fatal(TEMPORARY, f"unable to read input: {reason(e)}") from None
            if not data:
                break
            _write_all(out, data)
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to copy input: {reason(e)}") from None
    finally:
        child.stdin.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _preline(argv: list[str], environ: Mapping[bytes, bytes]) -> int:
    options = parse_arguments(argv)
    head = prepended(options, environ)
    try:
        child = subprocess.Popen(list(options.program), stdin=subprocess.PIPE, close_fds=True)
    except OSError as e:
        raise Fatal(exec_failure_code(e), f"unable to run {options.program[0]}: {reason(e)}") from None
    _feed(child, head)
    code = child.wait()
    if code < 0:
        raise Fatal(TEMPORARY, "child crashed")
    return code


def main(argv: list[str], environ: Mapping[bytes, bytes] | None = None) -> int:
    env = os.environb if environ is None else environ
    return run_helper("preline", lambda: _preline(argv, env))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
