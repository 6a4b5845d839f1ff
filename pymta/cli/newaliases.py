# -*- test-case-name: tests.cli.test_newaliases -*-
"""
C{pymta newaliases [--root DIR] [FILE]}: compile the sendmail-style
aliases in C{FILE} (default C{ROOT/etc/aliases}) into C{FILE.idx}, which
C{fastforward} reads (fastforward's newaliases; docs/dotqmail.md,
'Aliases: fastforward').  Also installed as C{newaliases} among the
helper programs.

Addresses without a domain are completed with the root's C{defaulthost},
C{plusdomain} and C{defaultdomain}, as fastforward's newaliases completes
them.  The database is replaced atomically (temporary file, fsync,
rename): deliveries go on with the old one until the new one is complete,
and a file with an error leaves the old one alone.  An C{:include:} file
that cannot be read now is reported as a warning: fastforward reads it at
delivery time, and defers the mail while it is missing.

Exit 0 on success, 100 when FILE has an error (named by file and line),
111 when a file cannot be read or written.
"""

from __future__ import annotations

import argparse
import os
import sys

from pymta.control import ControlError, default_root, load_controls
from pymta.forwarding.aliasfile import Alias, AliasFileError, parse_aliases
from pymta.forwarding.database import write_database
from pymta.forwarding.entries import INCLUDE
from pymta.inject.rewrite import Rewriter, RewriteConfigError

__all__ = ["main", "compile_aliases", "DATABASE_SUFFIX"]

DATABASE_SUFFIX = ".idx"


def compile_aliases(source: str, rewriter: Rewriter) -> list[Alias]:
    """Compile C{source} into C{source}.idx; raises L{AliasFileError} or C{OSError}."""
    with open(source, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data[: e.start].count(b"\n") + 1
        raise AliasFileError(f"{source}:{lineno}: not valid UTF-8") from None
    aliases = parse_aliases(text, rewriter, source)
    write_database(source + DATABASE_SUFFIX, aliases, os.path.abspath(source))
    return aliases


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta newaliases", description="compile ROOT/etc/aliases for fastforward")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("file", nargs="?", default=None, help="the aliases file (default ROOT/etc/aliases)")
    args = parser.parse_args(argv)
    root = args.root or default_root()
    source = args.file or os.path.join(root, "etc", "aliases")
    try:
        controls = load_controls(root)
        rewriter = Rewriter(controls.defaulthost, controls.defaultdomain, controls.plusdomain)
    except (ControlError, RewriteConfigError) as e:
        sys.stderr.write(f"pymta newaliases: fatal: {e}\n")
        return 111
    try:
        aliases = compile_aliases(source, rewriter)
    except AliasFileError as e:
        sys.stderr.write(f"pymta newaliases: fatal: {e}\n")
        return 100
    except OSError as e:
        sys.stderr.write(f"pymta newaliases: fatal: {e.filename or source}: {e.strerror}\n")
        return 111
    for alias in aliases:
        for target in alias.targets:
            if target.kind == INCLUDE and not os.access(target.value, os.R_OK):
                sys.stderr.write(f"pymta newaliases: warning: {target.value} (line {alias.lineno}) cannot be read now\n")
    sys.stdout.write(f"pymta newaliases: {len(aliases)} aliases compiled into {source}{DATABASE_SUFFIX}\n")
    return 0
