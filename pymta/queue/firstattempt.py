# -*- test-case-name: tests.queue.test_scheduler_first -*-
"""
First attempts from memory: a message pymta-send committed itself whose
recipients fit one delivery is tried once straight from C{todo/ID}, before
any other queue file is written (docs/internals.md, "pymta-send: where a
message stands", explains when and what a crash leaves).

L{plan_first_attempt} decides whether a message gets one; a
L{FirstAttempt} carries the attempt and, once it is back, its verdicts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from pymta.control import Controls
from pymta.interfaces import SUCCESS
from pymta.queue.channeljob import domain_of
from pymta.queue.envelope import Envelope
from pymta.queue.routing import route_recipient
from pymta.queue.sendfiles import ChannelRecord
from pymta.queue.verdict import Verdict

__all__ = ["FIRST_ATTEMPT_BACKLOG", "FirstAttempt", "plan_first_attempt", "pair_with_records"]

#: messages that may wait in memory for their first attempt (more are preprocessed as usual)
FIRST_ATTEMPT_BACKLOG = 1000


@dataclass
class FirstAttempt:
    """A newly committed message tried once from memory."""

    message_id: int
    channel: str
    sender: str
    #: routed recipients, all in one batch
    recipients: tuple[str, ...]
    since: int
    #: one verdict per recipient once the attempt is back (L{record})
    results: list[Verdict] = field(default_factory=list)
    #: every recipient's delivery succeeded: nothing needs to be written
    succeeded: bool = False
    #: at least one delivery succeeded
    delivered_some: bool = False

    def record(self, results: list[Verdict]) -> None:
        """The attempt is back with one verdict per recipient."""
        self.results = results
        successes = [v.status for v in results].count(SUCCESS)
        self.succeeded = bool(results) and successes == len(results)
        self.delivered_some = successes > 0


def plan_first_attempt(
    message_id: int, envelope: Envelope, controls: Controls, now: int,
    batch_size: Callable[[str, str], int], capacity: Callable[[str], int],
) -> FirstAttempt | None:
    """
    The first attempt of a message committed just now, or None when it goes
    the usual way: no recipients, several channels or domains, more
    recipients than one delivery takes (C{batch_size(channel, sender)}),
    deliveries on its channel switched off (C{capacity(channel)} is 0), or
    DSN data (its deliveries and results need the C{dsn/N/ID} file that
    preprocessing writes).
    """
    if not envelope.recipients or envelope.dsn is not None:
        return None
    routes = [route_recipient(r, controls) for r in envelope.recipients]
    channel = routes[0].channel
    domains = {domain_of(r.address) for r in routes}
    if any(r.channel != channel for r in routes) or len(domains) != 1:
        return None
    if len(routes) > batch_size(channel, envelope.sender) or capacity(channel) <= 0:
        return None
    return FirstAttempt(message_id, channel, envelope.sender, tuple(r.address for r in routes), now)


def pair_with_records(first: FirstAttempt, records: Iterable[ChannelRecord]) -> list[tuple[ChannelRecord, Verdict]]:
    """
    Match the attempt's verdicts to the T records of the channel file
    preprocessing wrote (by address, in order): what is to be checkpointed.
    """
    verdicts: dict[str, deque[Verdict]] = {}
    for address, verdict in zip(first.recipients, first.results):
        verdicts.setdefault(address, deque()).append(verdict)
    pairs = []
    for record in records:
        waiting = verdicts.get(record.address)
        if record.done or not waiting:
            continue
        pairs.append((record, waiting.popleft()))
    return pairs
