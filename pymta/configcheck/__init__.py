# -*- test-case-name: tests.configcheck -*-
"""
Configuration checks of a pymta root: what C{pymta check} prints and what
every daemon runs before it starts and before each reload.

Each check is a function of a L{CheckContext} yielding L{Problem}s
(C{path}, C{line}, C{severity}, C{text}); L{CHECKERS} lists them in the
order they report.  Every file goes through the parser its daemon uses, so
a parser made stricter shows up here without a change.  Control files are
found by walking L{pymta.control.SPECS} and
L{pymta.cli.showctl.EXTRA_FILES}: a new control file registered there is
read, and its name is known, without a change here either.

To add a check: write a function C{check_x(ctx) -> Iterator[Problem]} in a
module of this package and append it to L{CHECKERS}.
"""

from __future__ import annotations

import datetime
import os

from pymta.configcheck.accounts import check_assign, check_homes, check_passwd
from pymta.configcheck.certificate import check_certificate
from pymta.configcheck.controlfiles import check_control_files, load_every_control
from pymta.configcheck.dkimkeys import check_dkimkeys
from pymta.configcheck.dotqmails import check_dotqmail_files
from pymta.configcheck.lmtpdomains import check_lmtp_domains
from pymta.configcheck.nullclient import check_null_client
from pymta.configcheck.extrafiles import check_extra_files, check_smarthostauth, check_tcp_smtp
from pymta.configcheck.ownership import check_ownership, check_queue_owner
from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Checker, Problem, service_account

__all__ = ["CHECKERS", "DAEMON_CHECKERS", "ERROR", "WARNING", "Problem", "CheckContext", "make_context", "run_checks"]

CHECKERS: tuple[Checker, ...] = (
    check_ownership,
    check_queue_owner,
    check_control_files,
    check_extra_files,
    check_smarthostauth,
    check_certificate,
    check_tcp_smtp,
    check_assign,
    check_passwd,
    check_homes,
    check_dotqmail_files,
    check_dkimkeys,
    check_lmtp_domains,
    check_null_client,
)

#: what the daemons run at start and before a reload: all but the queue's owner, which
#: pymta.privileges judges when it drops root (a daemon not started as root drops nothing),
#: and the .qmail files of every home (a walk through every home of the system)
DAEMON_CHECKERS: tuple[Checker, ...] = tuple(c for c in CHECKERS if c not in (check_queue_owner, check_dotqmail_files))


def make_context(root: str, now: datetime.datetime | None = None) -> CheckContext:
    """The context of C{root}: its control files read once for every checker."""
    root = os.path.abspath(root)
    controls, problems = load_every_control(root)
    return CheckContext(
        root=root,
        now=now or datetime.datetime.now(datetime.timezone.utc),
        account=service_account(root),
        controls=controls,
        control_problems=problems,
    )


def run_checks(root: str, now: datetime.datetime | None = None,
               checkers: tuple[Checker, ...] = CHECKERS) -> list[Problem]:
    """
    Every problem of C{root}, in checker order; a line two checkers
    complain about is reported once (the first complaint).  A checker
    that fails on an unreadable file reports that file; one that fails
    otherwise is a warning naming the check, never an exception.
    """
    ctx = make_context(root, now)
    found: list[Problem] = []
    seen: set[tuple[str, int, str]] = set()
    for checker in checkers:
        try:
            problems = list(checker(ctx))
        except OSError as e:
            problems = [Problem(str(e.filename or ctx.root), 0, ERROR, f"cannot check it: {e.strerror or e}")]
        except Exception as e:  # a bug in a check must not stop a daemon
            problems = [Problem(ctx.root, 0, WARNING, f"{checker.__name__} could not run: {e!r}")]
        for problem in problems:
            key = (problem.path, problem.line, problem.severity)
            if problem.line > 0 and key in seen:
                continue
            seen.add(key)
            found.append(problem)
    return found
