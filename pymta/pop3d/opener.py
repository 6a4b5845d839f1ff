# -*- test-case-name: tests.pop3d.test_opener -*-
"""
Where an authenticated account's Maildir is read: privilege separation.

  - The account's uid is the daemon's own uid (virtual users: one mail uid
    owns every Maildir and the daemon runs as it), or the account has no
    uid: read in-process (L{pymta.pop3d.mailbox.LocalMailbox}).
  - Another uid: a per-session child running as that uid; the
    network-facing process never reads the user's files itself.  The child
    comes from the root spawner (L{pymta.pop3d.spawnerclient}) when one is
    running - started before twistd dropped privileges - or is spawned
    directly (L{pymta.pop3d.childclient}) while the daemon itself is root.
    The spawner is sent the login (C{Account.login}), not the uid: it checks
    the login itself and picks uid, gid and Maildir from its own data; its
    refusal (L{MailboxDenied}) becomes a C{-ERR}.
  - Another uid, the daemon not root and no spawner: refused with a clear
    C{-ERR}.
  - uid 0, or an in-process read while the daemon is root: refused (mail
    is never served as root).
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorThreads

from pymta.pop3d.auth import Account
from pymta.pop3d.childclient import ChildMailbox, MailboxDenied, open_child_mailbox
from pymta.pop3d.mailbox import open_local_mailbox
from pymta.pop3d.protocol import LoginRefused
from pymta.pop3d.spawnerclient import MailboxSpawner

__all__ = ["MailboxOpener"]


class MailboxOpener:
    """C{opener(account) -> Deferred[MailboxSession]}; the C{open_mailbox} of L{ServerSettings}."""

    def __init__(
        self,
        reactor: IReactorThreads,
        euid: Callable[[], int] = os.geteuid,
        python: str = sys.executable,
        spawner: MailboxSpawner | None = None,
    ) -> None:
        self.reactor = reactor
        self._euid = euid
        self.python = python
        self.spawner = spawner
        self.children: set[ChildMailbox] = set()  # live mailbox children

    def mode(self, account: Account) -> str:
        """C{"local"} or C{"child"}; raises L{LoginRefused} when the account cannot be served."""
        daemon_uid = self._euid()
        if account.uid == 0:
            raise LoginRefused("this account's mailbox belongs to root and is not served")
        if account.uid is None or account.uid == daemon_uid:
            if daemon_uid == 0:
                raise LoginRefused("account has no mailbox uid; a root server does not read mail as root")
            return "local"
        if daemon_uid == 0 or (self.spawner is not None and self.spawner.running):
            if account.gid is None:
                raise LoginRefused("account has a uid but no gid in users/passwd")
            return "child"
        raise LoginRefused(
            f"mailbox owned by uid {account.uid}, but this server runs as uid {daemon_uid} without root"
        )

    def __call__(self, account: Account) -> defer.Deferred:
        try:
            mode = self.mode(account)
        except LoginRefused as e:
            return defer.fail(e)
        if mode == "local":
            return open_local_mailbox(account.maildir, self.reactor)
        assert account.uid is not None and account.gid is not None
        if self.spawner is not None and self.spawner.running:
            if account.login is None:
                return defer.fail(LoginRefused("no login to show the mailbox spawner"))
            return self.spawner.open(account.login, self._track).addErrback(self._denied)
        return open_child_mailbox(
            self.reactor, account.uid, account.gid, account.maildir, self.python, self._track
        )

    @staticmethod
    def _denied(failure: object) -> None:
        failure.trap(MailboxDenied)  # type: ignore[attr-defined]
        raise LoginRefused(f"[AUTH] mailbox refused: {failure.value}")  # type: ignore[attr-defined]

    def _track(self, child: ChildMailbox) -> None:
        self.children.add(child)

        def forget(result: object) -> object:
            self.children.discard(child)
            return result

        child.ended.addBoth(forget)
