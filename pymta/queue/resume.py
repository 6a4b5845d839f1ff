# -*- test-case-name: tests.queue.test_scheduler_restart -*-
"""
What pymta-send finds in the queue when it starts: messages waiting in
C{todo/} (to be preprocessed again) and preprocessed messages (C{info/N/ID},
listed by L{pymta.queue.loading})
with the channel files still to do, whose mtime is their next attempt;
and, for the L{DsnBook}, the DSN data of the preprocessed ones (one listing
of C{dsn/N/}, after the crash cleaner).
"""

from __future__ import annotations

import os

from pymta.queue.dsnbook import DsnBook
from pymta.queue.layout import QueueLayout
from pymta.queue.preprocess import list_todo
from pymta.queue.qmaillog import QmailLog

__all__ = ["scan_todo", "channel_times", "info_birth"]


def scan_todo(layout: QueueLayout, log: QmailLog, dsn: DsnBook | None = None) -> frozenset[int]:
    """
    The ids in todo/ (none when it cannot be read); C{dsn}, when given, is
    loaded afresh from C{dsn/N/}.  The preprocessed messages in C{info/N/}
    are listed a subdirectory at a time by L{pymta.queue.loading.QueueLoader}.
    """
    try:
        todo = frozenset(list_todo(layout))
    except OSError:
        todo = frozenset()
    if dsn is not None:
        dsn.load(layout, todo, log.warning)
    return todo


def channel_times(layout: QueueLayout, log: QmailLog, channels: tuple[str, ...],
                  message_id: int) -> dict[str, int] | None:
    """
    The next attempt time (mtime) of each channel file C{message_id} still
    has (none: it is finished), or None when one could not be looked at
    (warned about: try again later).
    """
    found = {}
    for channel in channels:
        try:
            found[channel] = int(os.stat(layout.channel(channel, message_id)).st_mtime)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning(f"unable to stat {channel}/{message_id}: {e.strerror}; will try again later")
            return None
    return found


def info_birth(layout: QueueLayout, message_id: int) -> int | None:
    """The birth of a preprocessed message (its info file's mtime), or None when it cannot be looked at."""
    try:
        return int(os.stat(layout.info(message_id)).st_mtime)
    except OSError:
        return None
