# -*- test-case-name: tests.queue.test_group_commit -*-
"""
Group commit: steps 5-6 of the queue writer's order (L{pymta.queue.store})
for a batch of messages at once, an optimisation over qmail's plain path
(L{pymta.queue.store.PendingMessage.commit}, one message at a time).

The order of each message's disk operations does not change: its data and
envelope are durable before its C{mess/N} directory is synced, that before
its C{todo/ID} link, and the todo directory is synced before it is
acknowledged.  Only the directory syncs are shared: one per C{mess/N}
directory of the batch, one of todo/ for the whole batch (docs/internals.md,
"The queue on disk").

L{commit_prepared} commits one batch (blocking, any thread);
L{GroupCommitter} feeds it from the reactor: whatever is prepared while one
batch is being committed goes into the next one, so under load many
messages share each directory sync.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet import defer, threads
from twisted.python.failure import Failure

from pymta.interfaces import QueueReceipt
from pymta.queue.errors import EXIT_BUG, QueueFailure
from pymta.queue.crashpause import pause_for_crash_test
from pymta.queue.store import WriteState, PendingMessage, pull_trigger, write_failure

__all__ = ["commit_prepared", "GroupCommitter"]


def commit_prepared(messages: Sequence[PendingMessage], trigger: bool = True) -> list[QueueReceipt | QueueFailure]:
    """
    Steps 5-6 for a batch of L{PendingMessage.prepare}d (DURABLE) messages:
    the mess/N directories of the batch are synced, every C{intd/ID} is
    linked to C{todo/ID}, then the todo directory is synced once for the
    whole batch, and only then is any message acknowledged.  When the queue
    syncs its whole file system (L{QueueSync.whole_fs}), messages may come
    merely L{PendingMessage.stage}d: one syncfs makes their files and mess/N
    entries durable, a second one the todo/ links.  Otherwise a staged
    message gets its own fsyncs (L{PendingMessage.make_durable}) here first,
    in this thread, before any directory sync: the order of its disk
    operations is the same as when it comes durable - and when it is
    the batch's only message, its C{mess/N} directory is fsynced at the
    same time as its files (nothing to share it with).  A message whose
    C{mess/N} entry was made durable so, or early
    (L{PendingMessage.start_entry}), adds no directory to sync.

    Returns one receipt or L{QueueFailure} per message, in order.  A
    message that cannot be linked is removed again; a failing todo/ sync
    fails every message (the todo/ links are left in place: a possible
    duplicate, never a loss).  C{trigger=False} skips the trigger FIFO (the
    caller tells its scheduler directly).
    """
    if not messages:
        return []
    disk = messages[0].queue.disk
    sync, layout = disk.sync, disk.layout
    outcomes: dict[int, QueueReceipt | QueueFailure] = {}
    live: list[int] = []
    for i, message in enumerate(messages):
        if message.state not in (WriteState.DURABLE, WriteState.STAGED):
            outcomes[i] = QueueFailure(EXIT_BUG, f"message {message.message_id} is {message.state.value}, not prepared")
            continue
        if message.state is WriteState.STAGED and not sync.whole_fs:
            try:  # its data and envelope fsynced (a failure removes it); alone: its mess/N too, all at once
                message.make_durable(alone=len(messages) == 1)
            except QueueFailure as e:
                outcomes[i] = e
                continue
        live.append(i)

    # a write-back error reported since the oldest message of the batch began fails the batch
    since = min((messages[i].sync_generation for i in live), default=0)
    # the mess/N entries of the batch, each directory once, before any todo/ link can be seen
    # (syncfs mode: one syncfs, covering the staged data and envelopes too)
    # (one whose entry make_durable made durable, early or alone, needs none - unless a syncfs covers its data)
    mess_dirs: dict[str, list[int]] = {}
    synced: list[int] = []
    for i in live:
        if messages[i].mess_entry_durable and not sync.whole_fs:
            synced.append(i)
        else:
            mess_dirs.setdefault(messages[i].mess_dir, []).append(i)
    for (directory, indexes), error in zip(mess_dirs.items(), sync.directories(list(mess_dirs), since)):
        if error is None:
            synced += indexes
            continue
        failure = write_failure(error, "syncfs of the queue" if sync.whole_fs else f"fsync {directory}")
        for i in indexes:
            messages[i].fail()
            outcomes[i] = failure
    live = []
    for i in sorted(synced):
        if messages[i].state is WriteState.STAGED:  # the syncfs made it durable
            try:
                messages[i].make_durable(fsync=False)
            except QueueFailure as e:
                outcomes[i] = e
                continue
        live.append(i)

    pause_for_crash_test("link_todo")
    linked: list[int] = []
    for i in live:
        try:
            messages[i].link_todo()
        except QueueFailure as e:
            outcomes[i] = e
            continue
        linked.append(i)
    if linked:
        pause_for_crash_test("fsync_todo")
        [error] = sync.directories([layout.dir("todo")], since)
        if error is not None:
            # Visible but not durable: the scheduler may deliver them, so they
            # are left in place; the callers are told to retry (a possible
            # duplicate, never a loss).
            failure = write_failure(error, "fsync todo/")
            for i in linked:
                messages[i].fail_visible()
                outcomes[i] = failure
        else:
            for i in linked:
                outcomes[i] = messages[i].committed()
            pause_for_crash_test("trigger")
            if trigger:
                pull_trigger(layout)
            pause_for_crash_test("done")
    return [outcomes[i] for i in range(len(messages))]


class GroupCommitter:
    """
    Commits prepared messages in batches with L{commit_prepared} in
    C{threadpool}: whatever is added while one batch is being committed
    goes into the next one.  One batch at a time runs in the pool; the
    receipts fire in the reactor thread.  C{trigger} says whether each
    batch pulls the trigger FIFO.
    """

    def __init__(self, reactor: Any, threadpool: Any, trigger: bool) -> None:
        self._reactor = reactor
        self._threadpool = threadpool
        self._trigger = trigger
        self._waiting: list[tuple[PendingMessage, defer.Deferred[QueueReceipt]]] = []
        self._running = False
        #: batches and messages committed so far (messages / batches is the grouping achieved)
        self.batches = 0
        self.messages = 0

    @property
    def idle(self) -> bool:
        """No batch is being committed and none waits: a message added now is committed at once, alone."""
        return not self._running and not self._waiting

    def add(self, pending: PendingMessage) -> "defer.Deferred[QueueReceipt]":
        """Commit C{pending} (DURABLE or STAGED, see L{commit_prepared}) with the next batch; fires with its receipt."""
        d: defer.Deferred[QueueReceipt] = defer.Deferred()
        self._waiting.append((pending, d))
        self._next()
        return d

    def _next(self) -> None:
        if self._running or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        self._running = True
        self.batches += 1
        self.messages += len(batch)
        d = threads.deferToThreadPool(
            self._reactor, self._threadpool, commit_prepared, [p for p, _ in batch], self._trigger
        )
        d.addBoth(self._done, batch)

    def _done(
        self,
        outcomes: list[QueueReceipt | QueueFailure] | Failure,
        batch: list[tuple[PendingMessage, defer.Deferred[QueueReceipt]]],
    ) -> None:
        self._running = False
        if isinstance(outcomes, Failure):
            for pending, _ in batch:
                pending.abort()
            outcomes = [QueueFailure(EXIT_BUG, str(outcomes.value))] * len(batch)
        for (_, d), outcome in zip(batch, outcomes):
            if isinstance(outcome, QueueReceipt):
                d.callback(outcome)
            else:
                d.errback(outcome)
        self._next()
