# -*- test-case-name: tests.queue.test_dsnbook -*-
"""
Which messages have DSN data (a C{dsn/N/ID}, L{pymta.queue.dsnfile}), and
what it is, kept in pymta-send's memory so that a message without any costs
no system call: the checkpoint, the channels (L{pymta.interfaces.
DeliveryJob.dsn}), finishing and C{pymta ctl bounce} ask the L{DsnBook},
never the disk.

It is filled by preprocessing (the envelope's DSN records and the routed
recipients, L{pymta.queue.preprocessing}) and, at a start, by one listing of
the C{dsn/N/} directories after the crash cleaner has run (only the files
listed are read).  An C{S} record is appended to the file and then to
memory (L{DsnBook.append_success}); finishing forgets a message once its
file is gone.  A file that cannot be read at a start is remembered as there
(its message gets the defaults, but finishing still removes it); a
directory that cannot be listed leaves its messages to be read one by one,
as before.  Used in the reactor thread only.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable, Collection

from pymta.dsn.stored import DsnFile
from pymta.queue.dsnfile import append_success, parse_dsn_file, read_dsn_bytes
from pymta.queue.envelope import EnvelopeError
from pymta.queue.layout import QueueLayout

__all__ = ["DsnBook"]


class DsnBook:
    """The DSN data of pymta-send's messages, by message id (see the module docstring)."""

    def __init__(self) -> None:
        self._reset(None, lambda text: None)

    def _reset(self, layout: QueueLayout | None, warn: Callable[[str], None]) -> None:
        #: message id -> its data; None: it has a file that could not be read (the defaults apply)
        self._files: dict[int, DsnFile | None] = {}
        #: files ending in a torn record (a crash in an append): the next append ends it first
        self._torn: set[int] = set()
        #: subdirectories that could not be listed at the start, and the ids of theirs read since
        self._unlisted: set[str] = set()
        self._checked: set[int] = set()
        self._layout = layout
        self._warn = warn

    def has_file(self, message_id: int) -> bool:
        """Whether the message has a C{dsn/N/ID} (readable or not)."""
        self._look_up(message_id)
        return message_id in self._files

    def get(self, message_id: int) -> DsnFile | None:
        """The message's DSN data; None when it has none (or its file could not be read)."""
        self._look_up(message_id)
        return self._files.get(message_id)

    def preprocessed(self, message_id: int, data: DsnFile | None) -> None:
        """Preprocessing wrote the message's files (and its dsn file when C{data} is not None)."""
        self._checked.add(message_id)
        self._torn.discard(message_id)
        if data is None:
            self._files.pop(message_id, None)
        else:
            self._files[message_id] = data

    def forget(self, message_id: int) -> None:
        """The message is gone, with its dsn file."""
        self._files.pop(message_id, None)
        self._torn.discard(message_id)

    def notices_sent(self, message_id: int) -> None:
        """The message's success notices went out: none is due any more, whatever the file still says."""
        found = self._files.get(message_id)
        if found is not None and found.successes:
            self._files[message_id] = replace(found, successes={})

    def append_success(self, layout: QueueLayout, message_id: int, action: str, address: str) -> None:
        """Record a success to report: appended to the file, then here; OSError when the file could not take it."""
        found = self.get(message_id)
        if found is None:
            return  # no requests, or none that could be read: nothing asked for a notice
        append_success(layout, message_id, action, address, torn=message_id in self._torn)
        self._torn.discard(message_id)
        found.successes.setdefault(address, action)

    def load(self, layout: QueueLayout, skip: Collection[int], warn: Callable[[str], None]) -> None:
        """
        At a start: forget everything, then read every C{dsn/N/ID} but those of
        the messages in C{skip} (waiting in C{todo/}: preprocessing writes theirs afresh).
        """
        self._reset(layout, warn)
        top = layout.dir("dsn")
        for n in range(layout.split):
            sub = str(n)
            try:
                with os.scandir(os.path.join(top, sub)) as entries:
                    names = [e.name for e in entries if e.name.isdigit()]
            except FileNotFoundError:
                continue  # a queue made before DSN: no dsn file at all
            except OSError as e:
                warn(f"unable to read dsn/{sub}: {e.strerror}; reading its files one by one")
                self._unlisted.add(sub)
                continue
            for name in names:
                if int(name) not in skip:
                    self._read(layout, int(name))

    def _look_up(self, message_id: int) -> None:
        if self._unlisted and self._layout is not None and message_id not in self._checked \
                and self._layout.subdir(message_id) in self._unlisted:
            self._checked.add(message_id)
            self._read(self._layout, message_id)

    def _read(self, layout: QueueLayout, message_id: int) -> None:
        where = f"dsn/{layout.subdir(message_id)}/{message_id}"

        def bad(record: bytes) -> None:
            self._warn(f"{where}: skipped a malformed record {record!r}")

        try:
            data = read_dsn_bytes(os.path.join(layout.dir("dsn"), layout.subdir(message_id), str(message_id)))
            if data is None:
                return
            self._files[message_id] = parse_dsn_file(data, bad)
        except (OSError, EnvelopeError) as e:
            self._warn(f"unable to read {where}: {getattr(e, 'strerror', None) or e}; its requests are not honoured")
            self._files[message_id] = None
            return
        if data and not data.endswith(b"\0"):
            self._torn.add(message_id)
