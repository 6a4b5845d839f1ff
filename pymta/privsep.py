# -*- test-case-name: tests.test_privsep -*-
"""
Privilege separation: the one way a pymta process stops being root
(L{become}), the one way the root helpers fork and reap their children
(L{fork_child}, L{reap_ended}, L{wait_child}, L{kill_and_reap}), and the
map of which process runs as whom.

The privilege map
=================

"The mail account" is the owner of C{ROOT/queue}, or on a root without a
queue (POP3 only) the owner of C{ROOT/run} (L{pymta.privileges.mail_account});
a root owned by root has none, and a daemon started as root then refuses to
start.  Started by an ordinary user, every process below runs as that user
and nothing changes uid; deliveries and mailboxes of other uids are then
deferred or refused with a clear text.

twistd pymta-smtpd, twistd pymta-send, twistd pymta-pop3d, twistd pymta (all in one), and the .tac files
    Started as root (L{pymta.privileges.RootDroppingService}).  As root, in
    C{privilegedStartService}: raise the open-files limit, bind the
    listening ports, keep the import directories open, hand twistd's log
    and pid file to the mail account, and start the spawners that keep
    root: pymta-send (and C{twistd pymta}) the local delivery spawner,
    pymta-pop3d (and C{twistd pymta}) the POP3 mailbox spawner.  Then, in
    C{startService} and before any child service starts (and before the
    reactor runs, so before any connection is read), L{become} the mail
    account (C{dropped root: running as uid U gid G}); with twistd's own
    C{--uid}, twistd drops instead.

pid file remover (L{pymta.pidfile})
    Forked as root just before the drop, only when the mail account may
    not write in the pid file's directory.  Keeps root, holds nothing but a
    pipe from the daemon, idles until the daemon ends, then removes the pid
    file if it still names the daemon.

local delivery spawner (C{python -m pymta.local.spawner ROOT})
    Runs as the uid pymta-send had when its local channel started: root
    under a root start.  Never drops and has no network socket and no
    reactor.  Root for: reading C{users/assign} and the password database,
    opening the queued message (only a regular file owned by the queue's
    owner), forking delivery children.  Refuses uid 0.  Restarted after a
    crash, it runs with pymta-send's uid of that moment (the mail account),
    and deliveries for other uids are deferred.

delivery child (L{pymta.local.deliverychild})
    Forked by the local spawner for one uid and gid (several may run for
    one uid, one delivery each at a time); L{become}s the recipient's uid
    and gid before any delivery code runs (C{.qmail}
    files, Maildir, mbox and the programs of C{|} lines all run as the
    user) and never changes uid again.  Under a spawner that is not root it
    stays the spawner's uid and serves only that uid.

POP3 mailbox spawner (C{python -m pymta.pop3d.spawner})
    Started by pop3d only while pop3d is root; stays root, never drops, no
    network socket, no reactor.  Forks one mailbox child per login.

mailbox child (forked by the POP3 mailbox spawner, L{pymta.pop3d.mailboxchild})
    Root while it checks the login itself (C{users/passwd}, or the
    checkpassword program) and the account's home; then L{become}s the
    account (uid 0 and gid 0 refused) before it resolves and reads the
    Maildir; serves that one session and exits.

mailbox child (C{python -m pymta.pop3d.mailboxchild UID GID MAILDIR})
    Spawned by pop3d itself only while pop3d is still root (no spawner);
    L{become}s the account first thing.

checkpassword program
    Run by pop3d (as the mail account) to check a login; when the mailbox
    is another uid's, run again by the mailbox child as root, where the
    program switches to the account and runs pymta's reporter, whose answer
    (uid, gid, home) is the only one the child trusts.

pymta CLI (C{pymta init}, C{inject}, C{queue}, C{sendmail}, C{ctl}, C{passwd}, ...)
    Run as the caller, and never change uid.  Mail goes through the inject
    socket (the caller's uid comes from the kernel), or, with no queue
    manager listening, directly into the queue when the caller is root or
    the queue's owner (files made by root are given to the queue's owner).
    As root, C{pymta init} gives the root to C{--mail-uid}, C{pymta
    passwd} makes a new C{users/passwd} root's with the mail account's
    group, and C{pymta cert} gives the new certificate to the daemons'
    account.

The spawners
============

Both root spawners have the same shape: a loop without a reactor that
reads requests from its one pipe or socket (a typed, bounded record:
L{pymta.local.spawnrecords}, L{pymta.pop3d.spawnrequest}), forks a child
with L{fork_child}, and the child L{become}s its user before it touches
anything of the user's; children are reaped without blocking
(L{reap_ended}).  They differ in what a child serves: a delivery child
serves many deliveries, one at a time, for one uid and gid, until it has
been idle a while; a mailbox child serves one POP3 session.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Callable

__all__ = [
    "PrivilegeDropError",
    "become",
    "is_root",
    "fork_child",
    "reap_ended",
    "wait_child",
    "kill_and_reap",
]


class PrivilegeDropError(Exception):
    """L{become} refused the target, or the process is not exactly the target afterwards."""


def is_root() -> bool:
    """Whether this process can change its uid (real or effective uid 0)."""
    return os.getuid() == 0 or os.geteuid() == 0


def become(uid: int, gid: int, *, allow_root_group: bool = False) -> bool:
    """
    Become C{uid} and C{gid} for good: C{setgroups([gid])}, C{setgid},
    C{setuid}, in that order, then check that the real, effective and saved
    uid and gid are the target, that C{gid} is the only group, and that
    C{setuid(0)} now fails.  Returns True when the process changed, False
    when, without root, it already was exactly C{uid}/C{gid} (nothing to do).

    uid 0 is always refused, gid 0 unless C{allow_root_group} (a caller
    that must keep serving accounts whose group is 0).  Any refusal or
    mismatch raises L{PrivilegeDropError} with one line saying what.
    """
    if uid < 0 or gid < 0:
        raise PrivilegeDropError(f"cannot become uid {uid} gid {gid}: not an id")
    if uid == 0:
        raise PrivilegeDropError("refusing to become uid 0 (root)")
    if gid == 0 and not allow_root_group:
        raise PrivilegeDropError(f"refusing to become gid 0 (root's group) for uid {uid}")
    if not is_root():
        if os.getresuid() == (uid, uid, uid) and os.getresgid() == (gid, gid, gid):
            return False
        raise PrivilegeDropError(f"not running as root, cannot become uid {uid} gid {gid}")
    try:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as e:
        raise PrivilegeDropError(f"cannot become uid {uid} gid {gid}: {e.strerror or e}") from None
    _check_became(uid, gid)
    return True


def _check_became(uid: int, gid: int) -> None:
    if os.getresuid() != (uid, uid, uid):
        raise PrivilegeDropError(f"uid is {os.getresuid()} (real, effective, saved), not {uid}")
    if os.getresgid() != (gid, gid, gid):
        raise PrivilegeDropError(f"gid is {os.getresgid()} (real, effective, saved), not {gid}")
    groups = os.getgroups()
    if set(groups) - {gid}:
        raise PrivilegeDropError(f"groups are {groups}, not only {gid}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeDropError(f"setuid(0) still succeeds after becoming uid {uid}")


def fork_child(main: Callable[[], int | None], *, status_on_error: int = 1) -> int:
    """
    Fork; the child runs C{main()} and leaves with C{os._exit} of its
    return value (None: 0), or with C{status_on_error} when it raises
    anything at all (a line on stderr says what), so it never runs on into
    the parent's code.  Returns the child's pid; C{OSError} when the fork
    fails.
    """
    pid = os.fork()
    if pid:
        return pid
    status = status_on_error
    try:
        result = main()
        status = 0 if result is None else result
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else status_on_error
    except BaseException as e:
        try:
            os.write(2, f"pymta child {os.getpid()}: {type(e).__name__}: {e}\n".encode("utf-8", "replace"))
        except BaseException:
            pass
    finally:
        os._exit(status)


def reap_ended(pids: set[int]) -> dict[int, int]:
    """
    Collect the children in C{pids} that have ended, without blocking: they
    leave C{pids}; returns their wait statuses (a pid that is no child of
    this process counts as ended, status 0).
    """
    ended: dict[int, int] = {}
    for pid in list(pids):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        except InterruptedError:
            continue
        if done:
            pids.discard(pid)
            ended[pid] = status
    return ended


def wait_child(pid: int, timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> int | None:
    """
    The wait status of child C{pid} once it has ended, waiting at most
    C{timeout} seconds (None: as long as it takes); None when it is still
    running then.  A pid that is no child of this process: status 0.
    """
    deadline = None if timeout is None else clock() + timeout
    pause = 0.001
    while True:
        try:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if done:
            return status
        assert deadline is not None
        left = deadline - clock()
        if left <= 0:
            return None
        if not _await_exit(pid, left):
            time.sleep(min(left, pause))  # no pidfd: poll, more slowly as time goes by
            pause = min(pause * 2, 0.05)


def _await_exit(pid: int, timeout: float) -> bool:
    """Wait until C{pid} ends or C{timeout} passes, on a pidfd; False when the kernel has none."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return True


def kill_and_reap(pid: int) -> int:
    """SIGKILL child C{pid} and collect it; its wait status."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    status = wait_child(pid)
    assert status is not None
    return status

