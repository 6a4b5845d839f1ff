# -*- test-case-name: tests.queue.test_messagestate -*-
"""
The compact record of a scheduled message that only waits for its retry
time (I{resting}): its birth and the attempt time of each channel file it
has, packed into one int, so that a queue of many deferred messages costs
the queue manager a dict entry and one heap entry per waiting job rather
than a L{pymta.queue.messagestate.MessageState} and its
L{pymta.queue.channeljob.ChannelJob}s.  A resting message is a
L{pymta.queue.messagestate.Stage.SCHEDULED} one: the map wakes it (builds
the full state back) as soon as anything asks for it.

Times are whole seconds since the epoch, below 2**L{TIME_BITS} (negative
ones count as 0); each field holds its value plus one, 0 being "none".
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["TIME_BITS", "pack", "unpack"]

TIME_BITS = 40
_MASK = (1 << TIME_BITS) - 1


def _field(value: int | None) -> int:
    if value is None:
        return 0
    return min(max(value, 0), _MASK - 1) + 1


def pack(birth: int | None, dues: Sequence[int | None]) -> int:
    """One int for a message born at C{birth} whose channel number I{i} is due at C{dues[i]} (None: no file)."""
    record = _field(birth)
    for i, due in enumerate(dues, start=1):
        record |= _field(due) << (TIME_BITS * i)
    return record


def unpack(record: int, channels: int) -> tuple[int | None, list[int | None]]:
    """The birth and the C{channels} attempt times L{pack} was given."""
    fields = [(record >> (TIME_BITS * i)) & _MASK for i in range(channels + 1)]
    values = [None if f == 0 else f - 1 for f in fields]
    return values[0], values[1:]
