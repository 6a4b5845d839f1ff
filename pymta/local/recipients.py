# -*- test-case-name: tests.local.test_recipients -*-
"""
L{LocalRecipientLookup}: local delivery's L{pymta.interfaces.LocalRecipients},
the lookup behind smtpd's opt-in RCPT check (C{control/rcptcheck}).

A local part is looked up the way local delivery finds its user
(L{pymta.local.getpw}): users/assign, the password database, else the
alias user.  When that match leaves an extension (C{user-ext}, or any
address of the alias user), a C{.qmail-ext} or C{.qmail-default} file
must exist (L{pymta.local.dotqmail}); an exact user is always deliverable
(defaultdelivery).  Anything that cannot be decided - a broken assign
file, an unreadable home directory - answers True: the check never
refuses mail that delivery might take.

The lookups block (C{getpwnam}, C{stat}, opening C{.qmail} files), so
they run on a small thread pool of their own, never in the reactor
thread.  The assign table is cached as delivery caches it
(L{pymta.local.assign.AssignCache}); the cache is not made for threads,
so one lookup at a time reads it.
"""

from __future__ import annotations

import pwd
import threading
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from pymta.interfaces import LocalRecipients
from pymta.local.assign import AssignCache, AssignTable
from pymta.local.dotqmail import find_dotqmail
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import find_user, load_assign

__all__ = ["LocalRecipientLookup", "RecentlyDeliverable", "LOOKUP_THREADS", "POSITIVE_TTL"]

#: threads looking up recipients at once (each lookup is a few system calls)
LOOKUP_THREADS = 2

#: seconds a local part found deliverable is answered from memory (L{RecentlyDeliverable})
POSITIVE_TTL = 10.0

#: local parts remembered at most (L{RecentlyDeliverable})
POSITIVE_ENTRIES = 10000


class LocalRecipientLookup(Service):
    """
    L{pymta.interfaces.LocalRecipients} for the root C{root}.  A service:
    its thread pool runs between C{startService} and C{stopService};
    lookups asked before the start wait for it.
    """

    def __init__(
        self,
        root: str,
        reactor: Any,
        threads: int = LOOKUP_THREADS,
        getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    ) -> None:
        self.root = root
        self._reactor = reactor
        self._getpwnam = getpwnam
        self._assign = AssignCache(root)
        self._assign_lock = threading.Lock()
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="pymta-rcptcheck")

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        super().stopService()
        self._pool.stop()

    def deliverable(self, local: str) -> "Deferred[bool]":
        """See L{pymta.interfaces.LocalRecipients.deliverable}."""
        return deferToThreadPool(self._reactor, self._pool, self.deliverable_blocking, local)

    def deliverable_blocking(self, local: str) -> bool:
        """The same answer, computed in the calling thread (blocks: never call it in the reactor thread)."""
        try:
            user = find_user(self.root, local, self._assign_table(), getpwnam=self._getpwnam)
        except DeliveryFailure:
            return True
        if user.source != "alias" and not user.ext:
            return True
        try:
            found = find_dotqmail(user.home, user.dash, user.ext)
        except (DeliveryFailure, OSError):
            return True
        return found is not None

    def _assign_table(self) -> AssignTable | None:
        with self._assign_lock:
            return load_assign(self._assign)


class RecentlyDeliverable:
    """
    L{pymta.interfaces.LocalRecipients} in front of a slower one: a local
    part found deliverable is answered from memory for C{ttl} seconds,
    without a trip to the lookup's threads; anything else is looked up
    every time.  Only yes is remembered, so a stale answer can only accept
    mail that delivery then bounces, as it would without the RCPT check;
    a recipient just created or removed is seen within C{ttl} seconds.
    """

    def __init__(self, lookup: LocalRecipients, clock: IReactorTime, ttl: float = POSITIVE_TTL,
                 size: int = POSITIVE_ENTRIES) -> None:
        self._lookup = lookup
        self._clock = clock
        self._ttl = ttl
        self._size = size
        self._yes: dict[str, float] = {}

    def deliverable(self, local: str) -> "Deferred[bool]":
        """See L{pymta.interfaces.LocalRecipients.deliverable}."""
        now = self._clock.seconds()
        until = self._yes.get(local)
        if until is not None and now < until:
            return succeed(True)
        d = self._lookup.deliverable(local)

        def remember(known: bool) -> bool:
            if known:
                if len(self._yes) >= self._size:
                    self._yes.clear()  # bounded: a burst of distinct names starts over
                self._yes[local] = self._clock.seconds() + self._ttl
            else:
                self._yes.pop(local, None)
            return known

        return d.addCallback(remember)
