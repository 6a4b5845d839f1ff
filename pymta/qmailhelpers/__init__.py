"""
The C{.qmail} helper programs: C{preline}, C{forward}, C{condredirect},
C{bouncesaying} and C{except} (docs/dotqmail.md, 'Helper programs'),
C{fastforward} and C{dot-forward} (docs/dotqmail.md, 'Aliases and
.forward files'), and C{newaliases} (C{pymta newaliases} under qmail's
name).

Each helper is a module of this package with a C{main(argv) -> int}
returning qmail's exit code: 0 (success, go on with the next line), 99
(success, stop the .qmail file), 100 (bounce), 111 (try again later).
Local delivery puts L{BIN_DIR} first on the PATH of every delivery
program, so a C{.qmail} line names them bare (C{|preline procmail}); the
files there are small shell scripts that run
C{$PYMTA_PYTHON -P -m pymta.qmailhelpers NAME ARG...}.

This package imports nothing at module level: local delivery reads
L{BIN_DIR} from it, and a helper imports only what it needs.
"""

from __future__ import annotations

import os

__all__ = ["BIN_DIR", "NAMES"]

#: the directory holding one executable script per helper (package data of pymta)
BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qmailbin")

#: helper name -> the module of this package that implements it
NAMES = {
    "preline": "preline",
    "forward": "forward",
    "condredirect": "condredirect",
    "bouncesaying": "bouncesaying",
    "except": "except_",
    "fastforward": "fastforward",
    "dot-forward": "dotforward",
    "newaliases": "newaliases",
}
