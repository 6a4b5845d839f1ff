# -*- test-case-name: tests.cli.test_inject -*-
"""
C{pymta inject [-nNaAhH] [-fsender] [recip ...]}: qmail-inject.

Reads a message on standard input, completes and rewrites its header
(L{pymta.inject.message}) and queues it, or with C{-n} prints it.
Recipients: C{-a} the arguments, C{-h} the header, C{-H} both, C{-A} (the
default) the arguments if there are any, else the header.  C{--root DIR}
(default C{$PYMTA_ROOT}, else C{/var/pymta}) selects the pymta root.

Exit 0 when the message is safely queued; 100 for usage errors,
unparsable addresses and permanent refusals; 111 for temporary trouble.
Errors are printed as C{pymta inject: fatal: ...}.
"""

from __future__ import annotations

import getopt
import os
import sys
from typing import BinaryIO, Mapping, TextIO

from pymta.control import default_root
from pymta.inject.message import (
    DATA,
    PERMANENT,
    RECIP_ARGS,
    RECIP_BOTH,
    RECIP_DEFAULT,
    RECIP_HEADER,
    USAGE,
    InjectError,
    InjectOptions,
)
from pymta.inject.submit import Enqueue, inject

__all__ = ["main", "parse_arguments", "EXIT_PERMANENT", "EXIT_TEMPORARY"]

EXIT_PERMANENT = 100
EXIT_TEMPORARY = 111
USAGE_TEXT = "pymta inject: usage: pymta inject [ --root DIR ] [ -nNaAhH ] [ -fsender ] [ recip ... ]"

_STRATEGY = {"-a": RECIP_ARGS, "-A": RECIP_DEFAULT, "-h": RECIP_HEADER, "-H": RECIP_BOTH}


def parse_arguments(argv: list[str]) -> tuple[InjectOptions, str | None]:
    """The options of C{argv} and the C{--root} value; raises L{InjectError} (usage)."""
    try:
        opts, args = getopt.getopt(argv, "aAhHnNf:", ["root="])
    except getopt.GetoptError as e:
        raise InjectError(f"{e.msg}\n{USAGE_TEXT}", USAGE) from None
    options = InjectOptions()
    root = None
    for flag, value in opts:
        if flag in _STRATEGY:
            options.strategy = _STRATEGY[flag]
        elif flag == "-n":
            options.queue = False
        elif flag == "-N":
            options.queue = True
        elif flag == "-f":
            options.sender = value
        elif flag == "--root":
            root = value
    options.arguments = list(args)
    return options, root


def exit_code(error: InjectError) -> int:
    """qmail-inject's exit code for a failure."""
    return EXIT_PERMANENT if error.kind in (USAGE, DATA, PERMANENT) else EXIT_TEMPORARY


def main(
    argv: list[str],
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    enqueue: Enqueue | None = None,
) -> int:
    err = stderr or sys.stderr
    if argv[:1] == ["--help"]:
        (stdout or sys.stdout.buffer).write(USAGE_TEXT.encode() + b"\n")
        return 0
    try:
        options, root = parse_arguments(argv)
        inject(
            root or default_root(env),
            options,
            os.environ if env is None else env,
            stdin or sys.stdin.buffer,
            stdout or sys.stdout.buffer,
            enqueue=enqueue,
        )
    except InjectError as e:
        if e.kind == USAGE:
            err.write(f"{e.text}\n")
        else:
            err.write(f"pymta inject: fatal: {e.text}\n")
        err.flush()
        return exit_code(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
