# -*- test-case-name: tests.configcheck.test_daemonchecks -*-
"""
Which checks each daemon runs before it starts and before a reload: those
of the files it reads (L{CHECKERS_OF}), so a file one daemon does not read
never stops it (an expired certificate does not stop pymta-send).

Two findings that C{pymta check} reports as errors are warnings for the
daemons, because the daemons carry on and refusing to start would be
worse:

  - an expired C{control/servercert.pem}: pymta-smtpd and pymta-pop3d keep
    offering it (as Postfix does; most sending MTAs do not verify it), and
    say so at start and on each reload, until it is renewed;
  - a bad C{users/passwd} line: the daemons skip that line (that account
    cannot log in) and serve every other one.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

from pymta.configcheck.accounts import check_assign, check_homes, check_passwd
from pymta.configcheck.certificate import check_certificate
from pymta.configcheck.controlfiles import check_control_files
from pymta.configcheck.dkimkeys import check_dkimkeys
from pymta.configcheck.lmtpdomains import check_lmtp_domains
from pymta.configcheck.nullclient import check_null_client
from pymta.configcheck.extrafiles import check_extra_files, check_smarthostauth, check_tcp_smtp
from pymta.configcheck.ownership import check_ownership
from pymta.configcheck.problem import WARNING, CheckContext, Checker, Problem

__all__ = ["CHECKERS_OF", "checkers_of", "EXPIRED_KEPT", "SKIPPED_LINE"]

EXPIRED_KEPT = " (still offered: STARTTLS, POP3 TLS and AUTH keep working; renew it)"
SKIPPED_LINE = "(the daemons skip this line: no login)"


def _as_warning(checker: Checker, tolerated: Callable[[Problem], bool], note: str = "") -> Checker:
    """C{checker} with the errors C{tolerated} accepts turned into warnings (C{note} appended)."""

    def check(ctx: CheckContext) -> Iterator[Problem]:
        for problem in checker(ctx):
            if problem.is_error and tolerated(problem):
                problem = dataclasses.replace(problem, severity=WARNING, text=problem.text + note)
            yield problem

    check.__name__ = checker.__name__
    return check


certificate_for_daemons = _as_warning(
    check_certificate, lambda p: p.text.startswith("the certificate expired on "), EXPIRED_KEPT
)
passwd_for_daemons = _as_warning(check_passwd, lambda p: p.text.endswith(SKIPPED_LINE))

CHECKERS_OF: dict[str, tuple[Checker, ...]] = {
    # control files, queue (queuesync), local delivery's users/assign and homes
    "pymta-send": (check_ownership, check_control_files, check_extra_files, check_smarthostauth, check_assign,
                   check_homes, check_dkimkeys, check_lmtp_domains),
    # control files, tcp.smtp, certificate (STARTTLS), users/passwd (AUTH)
    "pymta-smtpd": (check_ownership, check_control_files, certificate_for_daemons, check_tcp_smtp, passwd_for_daemons,
                    check_dkimkeys, check_null_client),
    # control files, certificate (STLS, pop3s), users/passwd and its homes (the mailboxes)
    "pymta-pop3d": (check_ownership, check_control_files, certificate_for_daemons, passwd_for_daemons, check_homes),
    # the all-in-one process: every file (the queue's owner is judged by pymta.privileges)
    "pymta": (check_ownership, check_control_files, check_extra_files, check_smarthostauth, certificate_for_daemons,
              check_tcp_smtp, check_assign, passwd_for_daemons, check_homes, check_dkimkeys, check_lmtp_domains,
              check_null_client),
}


def checkers_of(program: str) -> tuple[Checker, ...]:
    """The checks of C{program}; a program not listed gets the all-in-one's."""
    return CHECKERS_OF.get(program, CHECKERS_OF["pymta"])
