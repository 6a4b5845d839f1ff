# -*- test-case-name: tests.cli.test_newu -*-
"""
C{pymta newu [--root DIR]}: build C{ROOT/users/assign.idx} from
C{ROOT/users/assign} (qmail-newu).

The index is written to a temporary file, fsynced and renamed, so a reader
sees the old or the new index, never half of one.  Exit 0 on success, 100
when assign has a format error (named by file and line), 111 when a file
cannot be read or written.  Local delivery notices an index older than
assign and reads assign directly until C{pymta newu} has run again.
"""

from __future__ import annotations

import argparse
import os
import sys

from pymta.control import default_root
from pymta.local.assign import INDEX_NAME, AssignError, AssignTable, write_index

__all__ = ["main", "build_index"]


def build_index(root: str) -> AssignTable:
    """(Re)build the index of C{root}/users/assign; raises L{AssignError} or C{OSError}."""
    users = os.path.join(root, "users")
    return write_index(os.path.join(users, "assign"), os.path.join(users, INDEX_NAME))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta newu", description="rebuild the users/assign index")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    args = parser.parse_args(argv)
    root = args.root or default_root()
    try:
        table = build_index(root)
    except AssignError as e:
        sys.stderr.write(f"pymta newu: fatal: {e}\n")
        return 100
    except OSError as e:
        sys.stderr.write(f"pymta newu: fatal: {e.filename or 'users/assign'}: {e.strerror}\n")
        return 111
    sys.stdout.write(f"pymta newu: {len(table.simple)} exact and {len(table.wildcard)} wildcard entries indexed\n")
    return 0
