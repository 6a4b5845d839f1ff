# -*- test-case-name: tests.test_privileges -*-
"""
Dropping root after the privileged start, to the owner of ROOT/queue.

twistd's own C{--uid} needs a passwd entry for the uid (it calls
C{initgroups}); a mail uid from C{pymta init --mail-uid} need not have one.
L{RootDroppingService} therefore does the drop itself: its children's
C{privilegedStartService} runs as root (ports below 1024 are bound, the
local delivery spawner and the POP3 mailbox spawner are started and keep
root), then, in C{startService} and before any child starts,
C{setgroups}, C{setgid}, C{setuid} switch the process to the queue's owner.
When twistd already dropped privileges (C{--uid}) or the process never had
root, nothing happens.  A root made by C{pymta init} as root always has a
queue owned by the mail uid (init refuses uid 0); a queue owned by root, or a
root without a queue (a POP3-only host), leaves the process as root with a
warning in the log, because there is no account to become.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from pymta.fdlimit import raise_open_files_limit

__all__ = ["RootDroppingService", "drop_root", "mail_account", "PrivilegeError"]

log = Logger(namespace="pymta")


class PrivilegeError(Exception):
    """Started as root, but there is no non-root account to become."""


def mail_account(root: str) -> tuple[int, int]:
    """
    The uid and gid that own C{root}/queue; L{PrivilegeError} when that is
    root or there is no queue.
    """
    path = os.path.join(root, "queue")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PrivilegeError(f"{path} does not exist: no mail account to run as") from None
    if st.st_uid == 0:
        raise PrivilegeError(
            f"{path} is owned by root (re-run 'pymta init {root} --mail-uid UID:GID' "
            "or chown the queue to the mail account)"
        )
    return st.st_uid, st.st_gid


def drop_root(root: str) -> tuple[int, int] | None:
    """
    If the process is root, become the owner (uid and group) of C{root}/queue.
    Returns the new C{(uid, gid)}, or None when there was nothing to drop.
    """
    if os.getuid() != 0 and os.geteuid() != 0:
        return None
    uid, gid = mail_account(root)
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    return uid, gid


class RootDroppingService(MultiService):
    """
    A MultiService whose children start privileged as root and run as the
    queue's owner.

    C{log_observer}, when given, becomes the C{ILogObserver} component of the
    twistd application this service joins (unless the application already
    has one); twistd then logs through it (see L{pymta.twistdlog}).
    """

    def __init__(self, root: str, log_observer: ILogObserver | None = None) -> None:
        super().__init__()
        self.root = root
        self.log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and isinstance(parent, Componentized):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        # before ports and helper processes (they inherit it): see pymta.fdlimit
        before, after = raise_open_files_limit()
        log.info("open files limit {limit}{raised}", limit=after, raised=f" (raised from {before})" if after != before else "")
        super().privilegedStartService()

    def startService(self) -> None:
        try:
            dropped = drop_root(self.root)
        except PrivilegeError as e:
            log.warn("still running as root: {reason}", reason=str(e))
        else:
            if dropped is not None:
                log.info("dropped root: running as uid {uid} gid {gid}", uid=dropped[0], gid=dropped[1])
        super().startService()
