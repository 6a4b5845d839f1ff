# -*- test-case-name: tests.queue.test_scheduler -*-
"""
One channel of one preprocessed message (C{local/N/ID} or C{remote/N/ID})
as the scheduler drives it: a L{ChannelJob} waits for its attempt time in
L{DueJobs}, then a I{pass} over its channel file hands the file's C{T}
records to the channel in batches (see docs/internals.md, "pymta-send:
where a message stands").
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from pymta.interfaces import Channel
from pymta.queue import bounce as bounces
from pymta.queue.layout import QueueLayout
from pymta.queue.reasons import JobReasons
from pymta.queue.retry import is_dying, next_retry
from pymta.queue.sendfiles import ChannelRecord, QueueFileError, read_channel_file, read_info

__all__ = ["ChannelJob", "DueJobs", "RESTED", "JobFiles", "Unreadable", "read_job_files", "batch_size"]


#: the heap key of a job woken from rest (L{pymta.queue.messagestate}): an entry of L{DueJobs} is its
#: while the entry's attempt time is the job's
RESTED = -2


def batch_size(channel: Channel, sender: str) -> int:
    """Recipients per delivery on C{channel} (one for a VERP sender: each gets its own sender)."""
    if sender.endswith(bounces.VERP_SUFFIX):
        return 1
    return max(1, int(channel.max_recipients or 1))


def domain_of(address: str) -> str:
    return address[address.rfind("@") + 1 :].lower()


@dataclass(frozen=True)
class JobFiles:
    """What a pass reads before it starts: the channel file's records and the message's sender and birth."""

    records: list[ChannelRecord]
    sender: str
    birth: int


@dataclass(frozen=True)
class Unreadable:
    """
    A pass cannot start.  C{kind}: C{"vanished"} (the channel file is gone:
    the message was removed or quarantined), C{"quarantine"} (nothing can
    ever deliver it; C{text} says why) or C{"trouble"} (try again later;
    C{text} names the file).
    """

    kind: str
    text: str


def read_job_files(layout: QueueLayout, message_id: int, channel: str,
                   relative: Callable[[str], str]) -> JobFiles | Unreadable:
    """Read what a pass over C{channel}'s file of C{message_id} needs (the message file must exist too)."""
    path = layout.channel(channel, message_id)
    try:
        records = read_channel_file(path)
        sender, birth = read_info(layout, message_id)
        with open(layout.mess(message_id), "rb"):
            pass
    except FileNotFoundError as e:
        if e.filename == path:
            return Unreadable("vanished", "")
        if e.filename == layout.mess(message_id):
            return Unreadable("quarantine", "the message file is missing")
        return Unreadable("trouble", relative(e.filename) if isinstance(e.filename, str) else "a queue file")
    except QueueFileError as e:
        return Unreadable("quarantine", f"{relative(path)}: {e}")
    except OSError as e:
        return Unreadable("trouble", relative(e.filename) if isinstance(e.filename, str) else "a queue file")
    return JobFiles(records, sender, birth)


@dataclass
class ChannelJob:
    """One channel of one message: waiting for its attempt time, or in a pass."""

    message_id: int
    channel: str
    due: int
    heap_key: int = -1
    running: bool = False
    sender: str = ""
    retry: int = 0
    dying: bool = False
    #: the message's birth (its info file's mtime), known from the first pass on
    birth: int = 0
    #: undispatched T records of the open pass, grouped by recipient domain (one SMTP transaction each)
    pending: "OrderedDict[str, deque[tuple[int, str]]]" = field(default_factory=OrderedDict)
    in_flight: int = 0
    #: T records left in the channel file
    undone: int = 0
    #: every batch of the open pass has been dispatched
    hit_eof: bool = False
    #: its lines in the message's reason file (why its recipients wait)
    reasons: JobReasons = field(default_factory=JobReasons)

    def learn(self, files: JobFiles, now: int, lifetime: int) -> None:
        """Take the sender, the retry time and the count of undone records from C{files} (a pass at C{now})."""
        self.sender = files.sender
        self.birth = files.birth
        self.retry = next_retry(files.birth, now, self.channel)
        self.dying = is_dying(files.birth, now, lifetime)
        self.undone = sum(1 for r in files.records if not r.done)

    def open_pass(self, files: JobFiles, now: int, lifetime: int) -> None:
        """Start a pass: every T record of C{files} waits for dispatch, grouped by domain."""
        self.learn(files, now, lifetime)
        self.running = True
        self.pending = OrderedDict()
        for record in files.records:
            if not record.done:
                self.pending.setdefault(domain_of(record.address), deque()).append((record.offset, record.address))
        self.in_flight = 0
        self.hit_eof = False

    def take_batch(self, size: int) -> list[tuple[int, str]]:
        """The next batch of the pass: up to C{size} C{(offset, address)} records of one domain."""
        domain, group = next(iter(self.pending.items()))
        batch = [group.popleft() for _ in range(min(size, len(group)))]
        if not group:
            del self.pending[domain]
        self.in_flight += 1
        return batch


class DueJobs:
    """
    The waiting jobs of each channel ordered by attempt time: an index into
    the scheduler's message states.  An entry is valid while C{lookup}
    returns the same waiting job with the same key; stale ones are dropped.
    """

    def __init__(self, channels: Iterable[str], lookup: Callable[[int, str], "ChannelJob | None"],
                 resting_due: Callable[[int, str], int | None] = lambda message_id, channel: None) -> None:
        self._heaps: dict[str, list[tuple[int, int, int]]] = {c: [] for c in channels}
        self._lookup = lookup
        #: a resting message's attempt time on a channel (-1: no job there), None for one that does not rest
        self._resting_due = resting_due
        self._keys = itertools.count()

    def push(self, job: ChannelJob, due: int) -> None:
        """C{job} waits until C{due}."""
        job.running = False
        job.due = due
        job.heap_key = next(self._keys)
        heapq.heappush(self._heaps[job.channel], (due, job.heap_key, job.message_id))

    def push_rested(self, channel: str, due: int, message_id: int) -> None:
        """The resting message C{message_id}'s job of C{channel} waits until C{due} (see L{RESTED})."""
        heapq.heappush(self._heaps[channel], (due, RESTED, message_id))

    def first_due(self, channel: str) -> int | None:
        """When the waiting job of C{channel} due first is due, without waking a resting message."""
        heap = self._heaps[channel]
        while heap:
            due, _, message_id = heap[0]
            resting = self._resting_due(message_id, channel)
            if resting is None:
                job = self.first(channel)
                return None if job is None else job.due
            if resting == due:
                return due
            heapq.heappop(heap)
        return None

    def first(self, channel: str) -> ChannelJob | None:
        """The waiting job of C{channel} due first (stale entries are dropped on the way)."""
        heap = self._heaps[channel]
        while heap:
            due, key, message_id = heap[0]
            job = self._lookup(message_id, channel)
            if job is None or job.running or job.heap_key != key and (job.heap_key != RESTED or job.due != due):
                heapq.heappop(heap)
                continue
            return job
        return None

    def pop(self, channel: str) -> None:
        heapq.heappop(self._heaps[channel])

    def rebuild(self, channel: str, jobs: Iterable[ChannelJob]) -> None:
        """Index exactly C{jobs} (their C{due} may have changed)."""
        heap = []
        for job in jobs:
            job.heap_key = next(self._keys)
            heap.append((job.due, job.heap_key, job.message_id))
        heapq.heapify(heap)
        self._heaps[channel] = heap

    def clear(self) -> None:
        for channel in self._heaps:
            self._heaps[channel] = []
