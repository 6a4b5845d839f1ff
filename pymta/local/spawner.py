# -*- test-case-name: tests.local.test_spawner -*-
"""
The local delivery spawner (qmail-lspawn's job): C{python -m
pymta.local.spawner ROOT}.

A small process without a reactor.  It reads requests from fd 0 and writes
reports to fd 1 (typed records: L{pymta.local.spawnrecords}); fd 2 carries
warnings for the parent's log.  For each request it:

1. finds the user (L{pymta.local.getpw.find_user}: users/assign, cached and
   re-read when it changes, then the password database, then the alias
   user), as qmail-lspawn does before it starts qmail-local;
2. refuses uid 0 (C{Not allowed to perform deliveries as root.}); when the
   spawner itself is not root, defers a delivery that needs a uid other than
   its own (C{Not running as root, cannot deliver as uid N. (#4.3.0)});
3. opens the queued message (as root when started as root; only a regular
   file owned by the owner of C{ROOT/queue} is delivered, since the parent
   names the path) and hands the open descriptor (C{SCM_RIGHTS}) to a
   B{delivery child} of that uid/gid, with C{control/defaultdelivery} as
   the spawner reads it itself (L{pymta.local.defaultdelivery}; the
   request's copy is not trusted).

A delivery child (L{pymta.local.deliverychild}, kept by
L{pymta.local.childpool}) is forked from the spawner, closes every
descriptor of the spawner except its own socket, becomes the recipient
(L{pymta.privsep.become}) and only then runs
L{pymta.local.deliver.deliver_local}.  It serves one delivery at a time and
stays for further deliveries B{of the same uid and gid only}, so a burst of
mail for one user costs one fork instead of one per message; it is retired
after C{CHILD_IDLE} idle seconds or C{CHILD_DELIVERIES} deliveries, or to
make room for another user.  A child never changes uid again and never
serves another user.

Reports carry C{K}/C{Z}/C{D}, the child's output capped at C{OUTPUT_CAP}
bytes as qmail-lspawn does, and for C{K} the forward targets the parent
must queue.  Up to C{MAX_CHILDREN} children run at once; further requests
wait.  End of input means: finish the queued and running deliveries, then
exit 0.

The loop (L{Spawner.run}, one turn: L{Spawner.step}) has the shape of the
POP3 mailbox spawner's (L{pymta.pop3d.spawner}); it reads time from the
clock it is given, so tests drive idle retirement without sleeping.
"""

from __future__ import annotations

import errno
import gc
import os
import selectors
import signal
import sys
import time
from collections import deque
from typing import Any, Callable

from pymta.address import split_address
from pymta.fsutil import write_all
from pymta.local.assign import AssignCache, AssignError
from pymta.local.childpool import CHILD_DELIVERIES, CHILD_IDLE, MAX_CHILDREN, ChildPool, Job
from pymta.local.defaultdelivery import DefaultDelivery
from pymta.local.deliver import LocalDelivery
from pymta.local.deliverychild import uid_refusal
from pymta.local.errors import DeliveryFailure, printed
from pymta.local.getpw import find_user
from pymta.local.spawnrecords import BadRequest, DeliveryReport, DeliveryRequest, SpawnerHello
from pymta.local.wire import RecordReader, WireError

__all__ = ["Spawner", "main"]


def _queue_owner(root: str) -> int | None:
    """The uid owning C{root}/queue (whose files are the messages), or None when it cannot be found."""
    try:
        return os.stat(os.path.join(root, "queue")).st_uid
    except OSError:
        return None


class Spawner:
    """The spawner's state and loop; see the module docstring."""

    def __init__(
        self,
        root: str,
        infd: int = 0,
        outfd: int = 1,
        *,
        lock_timeout: float = 30.0,
        child_idle: float = CHILD_IDLE,
        child_deliveries: int = CHILD_DELIVERIES,
        max_children: int = MAX_CHILDREN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = os.path.abspath(root)
        self.infd = infd
        self.outfd = outfd
        self.assign = AssignCache(self.root, warn=self.warn)
        self.default_delivery = DefaultDelivery(self.root)
        self.reader = RecordReader()
        self.selector = selectors.DefaultSelector()
        self.pool = ChildPool(
            self.selector,
            self.send,
            self.warn,
            queue_owner=_queue_owner(self.root) if os.geteuid() == 0 else None,
            lock_timeout=lock_timeout,
            child_idle=child_idle,
            child_deliveries=child_deliveries,
            max_children=max_children,
            clock=clock,
            close_in_child=(infd, outfd),
        )
        self.waiting: deque[Job] = deque()
        self.eof = False
        self.parent = os.getppid()

    # -- output ------------------------------------------------------------

    def warn(self, text: str) -> None:
        try:
            os.write(2, f"pymta-spawner: warning: {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    def send(self, record: DeliveryReport | SpawnerHello) -> None:
        write_all(self.outfd, record.encode())

    # -- main loop ---------------------------------------------------------

    def run(self) -> int:
        self.start()
        while not self.finished():
            self.step()
        return self.close()

    def start(self) -> None:
        self.send(SpawnerHello(os.getpid(), os.getuid()))
        self.selector.register(self.infd, selectors.EVENT_READ, None)
        gc.freeze()  # keep the collector from touching (and copying) inherited pages in every child

    def finished(self) -> bool:
        """End of input, nothing waiting, no delivery running."""
        return self.eof and not self.waiting and not self.pool.busy()

    def step(self, wait: float | None = None) -> None:
        """One turn: wait for input (at most C{wait} seconds, or until the pool has work), then act on it."""
        timeout = self.pool.timeout()
        if wait is not None:
            timeout = wait if timeout is None else min(timeout, wait)
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._read_requests()
            else:
                self.pool.read(key.data)
        self._dispatch()
        self.pool.retire_idle()
        self.pool.reap()

    def close(self) -> int:
        self.pool.close()
        return 0

    def _read_requests(self) -> None:
        try:
            data = os.read(self.infd, 65536)
        except InterruptedError:
            return
        if not data:
            self.eof = True
            self.selector.unregister(self.infd)
            return
        try:
            records = self.reader.feed(data)
        except WireError as e:
            self.warn(f"protocol error from parent: {e}; no more requests accepted")
            self.eof = True
            self.selector.unregister(self.infd)
            return
        for record in records:
            self.accept(record)

    # -- one request -------------------------------------------------------

    def accept(self, record: dict[str, Any]) -> None:
        """Check a request and find its user; report at once or queue the job."""
        try:
            request = DeliveryRequest.parse(record)
        except BadRequest as e:
            if e.slot is None:
                self.warn(f"request without a slot number ignored: {record!r:.200}")
            else:
                self.send(DeliveryReport.report(e.slot, "D", printed(e.text)))
            return
        slot = request.slot
        if any("\0" in v for v in (request.message, request.sender, request.recipient, request.defaultdelivery)):
            self.send(DeliveryReport.report(slot, "D", "Sorry, address contains a NUL byte. (#5.1.3)\n"))
            return
        if "@" not in request.recipient:
            self.send(DeliveryReport.report(slot, "D", "Sorry, address must include host name. (#5.1.3)\n"))
            return
        local, domain = split_address(request.recipient)
        if not local:
            self.send(DeliveryReport.report(slot, "K", ""))
            return
        try:
            table = self.assign.table()
        except AssignError as e:
            self.send(DeliveryReport.report(slot, "Z", f"Trouble reading users/assign: {e}. (#4.3.0)\n"))
            return
        try:
            user = find_user(self.root, local, table)
            refusal = uid_refusal(user.uid)
            if refusal is not None:
                self.send(DeliveryReport.report(slot, "Z", refusal.report, needs_root=user.uid != 0))
                return
            # the spawner's own copy: the request's text comes from the mail uid
            defaultdelivery = self.default_delivery.current()
        except DeliveryFailure as failure:
            self.send(DeliveryReport.report(slot, "D" if failure.status == "D" else "Z", failure.report))
            return
        delivery = LocalDelivery(request.sender, local, domain, user, defaultdelivery)
        self.waiting.append(Job(slot, request.message, delivery))

    def _orphaned(self) -> bool:
        """The queue manager that sent the requests died (this process was handed to another parent)."""
        return self.eof and os.getppid() != self.parent

    def _dispatch(self) -> None:
        """Start every waiting job that has (or may fork) a free child of its uid."""
        if self.waiting and self._orphaned():
            # Its successor will deliver these again, and their message files may by then hold
            # other messages: none is started (running ones finish; nobody reads the reports).
            for job in self.waiting:
                self.send(DeliveryReport.report(job.slot, "Z", "The queue manager went away before this delivery started. (#4.3.0)\n"))
            self.waiting.clear()
            return
        kept: deque[Job] = deque()
        while self.waiting:
            job = self.waiting.popleft()
            if not self.pool.start(job):
                kept.append(job)
        self.waiting = kept


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m pymta.local.spawner ROOT\n")
        return 100
    # The parent's terminal signals are not for us: end of input stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.umask(0o077)
    # delivery programs get it (pymta.local.program): forward and pymta inject use this root's queue
    os.environ["PYMTA_ROOT"] = os.path.abspath(args[0])
    try:
        return Spawner(args[0]).run()
    except OSError as e:
        if e.errno == errno.EPIPE:
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main())
