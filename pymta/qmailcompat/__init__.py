"""
qmail's program paths for qmail's own add-ons (docs/migrating.md, 'qmail's
add-ons'): the programs of L{PROGRAMS} under C{/var/qmail/bin} and
C{/var/lib/qmail/bin}, where dot-forward, fastforward, ezmlm and friends
look for C{qmail-queue}, C{qmail-inject}, C{sendmail} and C{preline}.

L{pymta.qmailcompat.programs} runs one of them by its qmail name
(C{python -m pymta.qmailcompat NAME ARG...}); L{pymta.qmailcompat.install}
writes and removes the directory (C{pymta qmail-compat install|remove}).

This package imports nothing at module level.
"""

from __future__ import annotations

__all__ = ["PROGRAMS"]

#: qmail's name -> what pymta runs for it (see L{pymta.qmailcompat.programs})
PROGRAMS: dict[str, str] = {
    "qmail-queue": "pymta queue",
    "qmail-inject": "pymta inject",
    "sendmail": "pymta sendmail",
    "preline": "the .qmail helper",
    "forward": "the .qmail helper",
    "condredirect": "the .qmail helper",
    "bouncesaying": "the .qmail helper",
    "except": "the .qmail helper",
    "qmail-qstat": "pymta qstat",
    "qmail-qread": "pymta qread",
    "qmail-showctl": "pymta showctl",
    "maildirmake": "pymta maildirmake",
}
