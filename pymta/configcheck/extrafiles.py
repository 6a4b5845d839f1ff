# -*- test-case-name: tests.configcheck.test_extrafiles -*-
"""
What the daemons find in files beyond the control files' syntax:

  - C{queuesync}: L{pymta.queue.syncing.QueueSync.from_control}'s
    warnings (syncfs unavailable on the queue's file system: pymta-send
    uses fsync).  The file's syntax is checked with the other control files
    (L{pymta.configcheck.controlfiles}, through L{pymta.extracontrols}).
  - C{control/smarthostauth}: mode and owner (L{check_smarthostauth}):
    passwords only the mail account may read.  Its lines are checked with
    the other control files.
  - C{etc/tcp.smtp}: L{pymta.smtpd.access.AccessRules}, every bad line
    (lines without a colon and addresses with a blank, such as
    C{127.0.0.1 :deny}, are its errors too), and a warning for each line
    earlier lines take a part of (a range that still applies to the rest).
"""

from __future__ import annotations

import os
from typing import Iterator

from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem, every_error
from pymta.control import ControlError

__all__ = ["check_extra_files", "check_smarthostauth", "check_tcp_smtp"]


def check_extra_files(ctx: CheckContext) -> Iterator[Problem]:
    """The warning pymta-send would log about control/queuesync."""
    from pymta.queue.syncing import QueueSync

    controls = ctx.controls
    queuedir = ctx.path("queue")
    if controls is None or not os.path.isdir(queuedir):
        return
    try:
        sync, warning = QueueSync.from_control(queuedir, controls.extra_lines("queuesync"))
    except ControlError:
        return  # a syntax error: reported with the control files
    sync.close()
    if warning is not None:
        yield Problem(controls.path("queuesync"), 1, WARNING, warning.removeprefix("control/queuesync: "))


def check_smarthostauth(ctx: CheckContext) -> Iterator[Problem]:
    """control/smarthostauth as pymta-send judges it: mode 0600 or stricter, owned by the mail account."""
    from pymta.remote.smarthostauth import NAME, file_problem

    path = ctx.path("control", NAME)
    problem = file_problem(path, ctx.account)
    if problem is not None:
        yield Problem(path, 0, ERROR, problem)


def check_tcp_smtp(ctx: CheckContext) -> Iterator[Problem]:
    """ROOT/etc/tcp.smtp through pymta-smtpd's parser: every bad line."""
    from pymta.smtpd.access import AccessRules, TcpRulesError

    path = ctx.path("etc", "tcp.smtp")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return
    except OSError as e:
        yield Problem(path, 0, ERROR, f"cannot read it: {e.strerror}")
        return
    found = every_error(text.split("\n"), lambda work: AccessRules.parse("\n".join(work), path), (TcpRulesError,),
                        lambda e: e.lineno)
    for error in found:
        yield Problem(path, error.lineno, ERROR, error.reason)
    if not found:
        for lineno, overlap in AccessRules.parse(text, path).overlaps:
            yield Problem(path, lineno, WARNING, overlap)
