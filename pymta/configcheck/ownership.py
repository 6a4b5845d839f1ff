# -*- test-case-name: tests.configcheck.test_ownership -*-
"""
Owners and modes of the root's directories.

  - C{ROOT}, C{control/}, C{etc/}, C{users/}: writable by every local user
    is an error (anyone could rewrite the configuration), by a group a
    warning; when the daemons drop root to a mail account, that account
    being able to write them is a warning (a compromised network daemon
    could change what the others trust);
  - C{ROOT} missing is an error, C{control/} missing a warning (every
    default applies);
  - C{ROOT/queue}: owned by root is an error (started as root, the daemons
    would have no account to become: L{check_queue_owner}, which the
    daemons leave to L{pymta.privileges}), writable by every local user an
    error; no queue is a warning (pymta-send and pymta-smtpd need one, a
    POP3-only host does not);
  - C{ROOT/run}: the daemons' account must be able to write it (sockets,
    pid files), else an error.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator

from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem
from pymta.fsaccess import WRITE, Account, may
from pymta.qmqpservers import null_client_path

__all__ = ["check_ownership", "check_queue_owner", "may_write"]


def may_write(st: os.stat_result, account: tuple[int, int]) -> bool:
    """True when the owner of C{account} (uid, gid) may write to a file with status C{st}."""
    return may(st, Account(*account), WRITE)


def _configuration_dir(path: str, st: os.stat_result, ctx: CheckContext) -> Iterator[Problem]:
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        yield Problem(path, 0, ERROR, f"mode {mode:04o}: every local user can change the configuration (chmod o-w)")
        return
    if mode & stat.S_IWGRP:
        yield Problem(path, 0, WARNING, f"mode {mode:04o}: group {st.st_gid} can change the configuration")
    account = ctx.account
    if os.geteuid() == 0 and account is not None and st.st_uid == account[0]:
        yield Problem(path, 0, WARNING,
                      f"owned by uid {account[0]}, the mail account the daemons run as: a compromised daemon "
                      "could change the configuration (chown it to root)")


def check_queue_owner(ctx: CheckContext) -> Iterator[Problem]:
    """
    A queue owned by root.  Not among the daemons' own checks
    (L{pymta.configcheck.DAEMON_CHECKERS}): L{pymta.privileges} refuses
    that when the daemon drops root, and a daemon not started as root
    never drops anything.
    """
    path = ctx.path("queue")
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_uid == 0:
        yield Problem(path, 0, ERROR,
                      "owned by root: started as root, the daemons would have no account to become "
                      f"(chown -R the queue to the mail account, or pymta init {ctx.root} --mail-uid UID:GID)")


def _queue(ctx: CheckContext) -> Iterator[Problem]:
    path = ctx.path("queue")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not os.path.exists(null_client_path(ctx.root)):  # a null client needs none
            yield Problem(path, 0, WARNING, f"no queue: pymta-send and pymta-smtpd need one (pymta init {ctx.root})")
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        yield Problem(path, 0, ERROR, f"mode {mode:04o}: every local user can write to the queue")


def _run(ctx: CheckContext) -> Iterator[Problem]:
    path = ctx.path("run")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # the services make it
    if ctx.account is not None and not may_write(st, ctx.account):
        yield Problem(path, 0, ERROR,
                      f"not writable by uid {ctx.account[0]}, the account the daemons run as "
                      "(inject and control sockets, pid files)")


def check_ownership(ctx: CheckContext) -> Iterator[Problem]:
    try:
        st = os.stat(ctx.root)
    except OSError as e:
        yield Problem(ctx.root, 0, ERROR, f"{e.strerror} (pymta init {ctx.root} makes a root)")
        return
    if not stat.S_ISDIR(st.st_mode):
        yield Problem(ctx.root, 0, ERROR, "not a directory")
        return
    yield from _configuration_dir(ctx.root, st, ctx)
    for name in ("control", "etc", "users"):
        path = ctx.path(name)
        try:
            sub = os.stat(path)
        except FileNotFoundError:
            if name == "control":
                yield Problem(path, 0, WARNING, "absent: every control file takes its default")
            continue
        yield from _configuration_dir(path, sub, ctx)
    yield from _queue(ctx)
    yield from _run(ctx)
