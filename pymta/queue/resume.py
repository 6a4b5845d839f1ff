# -*- test-case-name: tests.queue.test_scheduler_restart -*-
"""
What pymta-send finds in the queue when it starts: messages waiting in
C{todo/} (to be preprocessed again) and preprocessed messages (C{info/N/ID})
with the channel files still to do, whose mtime is their next attempt;
and, for the L{DsnBook}, the DSN data of the preprocessed ones (one listing
of C{dsn/N/}, after the crash cleaner).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pymta.queue.dsnbook import DsnBook
from pymta.queue.layout import QueueLayout
from pymta.queue.preprocess import list_todo
from pymta.queue.qmaillog import QmailLog

__all__ = ["QueueContents", "scan_queue", "channel_times", "info_birth"]


@dataclass(frozen=True)
class QueueContents:
    #: ids in todo/
    todo: frozenset[int]
    #: ids with an info file and no todo entry
    preprocessed: tuple[int, ...]


def scan_queue(layout: QueueLayout, log: QmailLog, dsn: DsnBook | None = None) -> QueueContents:
    """
    List todo/ and info/ (a directory that cannot be read is warned about
    and skipped); C{dsn}, when given, is loaded afresh from C{dsn/N/}.
    """
    try:
        todo = frozenset(list_todo(layout))
    except OSError:
        todo = frozenset()
    preprocessed = []
    info_top = layout.dir("info")
    for n in range(layout.split):
        try:
            names = os.listdir(os.path.join(info_top, str(n)))
        except OSError as e:
            log.warning(f"unable to read info/{n}: {e.strerror}")
            continue
        preprocessed += [int(name) for name in names if name.isdigit() and int(name) not in todo]
    if dsn is not None:
        dsn.load(layout, todo, log.warning)
    return QueueContents(todo, tuple(preprocessed))


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
