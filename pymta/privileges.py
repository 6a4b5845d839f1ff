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
root, nothing happens.  A queue owned by root is refused: pymta never runs
its network-facing parts as root.
"""

from __future__ import annotations

import os

from twisted.application.service import MultiService
from twisted.logger import Logger

__all__ = ["RootDroppingService", "drop_root", "PrivilegeError"]

log = Logger(namespace="pymta")


class PrivilegeError(Exception):
    """Started as root, but there is no non-root account to become."""


def drop_root(root: str) -> tuple[int, int] | None:
    """
    If the process is root, become the owner (uid and group) of C{root}/queue.
    Returns the new C{(uid, gid)}, or None when there was nothing to drop.
    """
    if os.getuid() != 0 and os.geteuid() != 0:
        return None
    st = os.stat(os.path.join(root, "queue"))
    if st.st_uid == 0:
        raise PrivilegeError(
            f"{root}/queue is owned by root: refusing to run the network-facing services as root "
            f"(re-run 'pymta init {root} --mail-uid UID:GID' or chown the queue to the mail account)"
        )
    os.setgroups([st.st_gid])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    return st.st_uid, st.st_gid


class RootDroppingService(MultiService):
    """A MultiService whose children start privileged as root and run as the queue's owner."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def startService(self) -> None:
        dropped = drop_root(self.root)
        if dropped is not None:
            log.info("dropped root: running as uid {uid} gid {gid}", uid=dropped[0], gid=dropped[1])
        super().startService()
