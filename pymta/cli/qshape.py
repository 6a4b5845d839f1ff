# -*- test-case-name: tests.cli.test_qshape -*-
"""
C{pymta qshape [--by recipient|sender] [--queue deferred|held|all] [--top N]}:
the queue by domain and age, in the layout of Postfix's C{qshape}::

                   T  5 10 20 40 80 160 320 640 1280 1280+
           TOTAL   6  1  0  0  0  2   0   0   0    0     3
     dead.example  5  0  0  0  0  2   0   0   0    0     3
    other.example  1  1  0  0  0  0   0   0   0    0     0

By recipient domain (the default) every recipient still to be delivered
(a C{T} record of the message's C{local} or C{remote} file, or of its
C{todo} file before preprocessing) counts once; by sender domain every
message counts once (one sender each, as Postfix says: a message
distribution).  An age counts in the first column whose limit (minutes)
it is below, from 1280 minutes on in C{1280+} (L{pymta.queue.ages}, as
Postfix's qshape and the C{pymta_queue_messages_by_age} metric); a message's age runs
from its birth (the C{info} file's mtime; the C{todo} file's before
preprocessing).  C{T} is the row's total; the C{TOTAL} row comes first,
then the C{--top} domains (default 10; 0 for all) by total, ties by name.
The null sender shows as C{MAILER-DAEMON}.

The queue files are only read (pymta-send may run meanwhile: a message that
goes away while being read is skipped); which messages C{--queue} selects
is L{pymta.cli.queuestate}'s business.  An unreadable queue prints
C{pymta qshape: fatal: ...} and exits 111.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from pymta.cli.qread import channel_records, first_record, message_ids
from pymta.cli.queuestate import QUEUES, TODO, state_of
from pymta.control import default_root
from pymta.queue.envelope import EnvelopeError, address_bytes, parse_todo
from pymta.queue.ages import LIMITS, age_index
from pymta.queue.layout import QueueLayout
from pymta.queue.preprocess import list_todo

__all__ = ["main", "LIMITS", "Shape", "QueuedMessage", "queued_messages", "domain_of", "bucket"]

HEADERS = ("T",) + tuple(str(limit) for limit in LIMITS) + (f"{LIMITS[-1]}+",)
NULL_SENDER = "MAILER-DAEMON"


def bucket(age_seconds: float) -> int:
    """The age column (0 for C{5} ... 9 for C{1280+}) of an age in seconds (L{pymta.queue.ages})."""
    return age_index(age_seconds)


def domain_of(address: bytes) -> str:
    """The domain of an address as qshape shows it: after the last C{@}, in lower case."""
    if not address:
        return NULL_SENDER
    at = address.rfind(b"@")
    domain = address[at + 1 :] if at != -1 else address
    return domain.decode("utf-8", "replace").lower()


@dataclass(frozen=True)
class QueuedMessage:
    """What qshape needs of a message: its state, birth, sender and the recipients still to deliver."""

    message_id: int
    state: str
    born: float
    sender: bytes
    undelivered: tuple[bytes, ...]


def _preprocessed(layout: QueueLayout, message_id: int) -> QueuedMessage:
    with open(layout.info(message_id), "rb") as f:
        sender = first_record(f.read())[1:]
        born = os.fstat(f.fileno()).st_mtime
    undelivered = tuple(record[1:] for channel in ("local", "remote")
                        for record in channel_records(layout, channel, message_id) if record[:1] == b"T")
    return QueuedMessage(message_id, state_of(layout, message_id), born, sender, undelivered)


def _not_preprocessed(layout: QueueLayout, message_id: int) -> QueuedMessage:
    with open(layout.todo(message_id), "rb") as f:
        envelope = parse_todo(f.read())
        born = os.fstat(f.fileno()).st_mtime
    return QueuedMessage(message_id, TODO, born, address_bytes(envelope.sender),
                         tuple(address_bytes(r) for r in envelope.recipients))


def queued_messages(layout: QueueLayout, states: frozenset[str]) -> Iterator[QueuedMessage]:
    """
    The messages in the given states.  A message that goes away meanwhile,
    or whose todo file is being written, is skipped; C{OSError} only when
    a queue directory cannot be read.
    """
    seen: set[int] = set()  # counted from todo/: preprocessing may move it to info/ before that is listed
    if TODO in states:
        for message_id in list_todo(layout):
            try:
                message = _not_preprocessed(layout, message_id)
            except (FileNotFoundError, EnvelopeError):
                continue
            seen.add(message_id)
            yield message
    if states - {TODO}:
        for message_id in message_ids(layout):
            if message_id in seen:
                continue
            try:
                message = _preprocessed(layout, message_id)
            except FileNotFoundError:
                continue
            if message.state in states:
                yield message


@dataclass
class Shape:
    """Counts by domain and age column."""

    rows: dict[str, list[int]] = field(default_factory=dict)

    def add(self, domain: str, column: int, count: int = 1) -> None:
        row = self.rows.setdefault(domain, [0] * len(HEADERS[1:]))
        row[column] += count

    @classmethod
    def of(cls, messages: Iterator[QueuedMessage], now: float, by_sender: bool = False) -> "Shape":
        shape = cls()
        for message in messages:
            column = bucket(max(0.0, now - message.born))
            if by_sender:
                shape.add(domain_of(message.sender), column)
            else:
                for domain, count in Counter(domain_of(r) for r in message.undelivered).items():
                    shape.add(domain, column, count)
        return shape

    def table(self, top: int = 10) -> list[list[str]]:
        """Rows of cells: the header, C{TOTAL}, then the C{top} domains (all when C{top} is 0)."""
        total = [sum(column) for column in zip(*self.rows.values())] if self.rows else [0] * len(HEADERS[1:])
        ranked = sorted(self.rows.items(), key=lambda item: (-sum(item[1]), item[0]))
        if top > 0:
            ranked = ranked[:top]
        lines = [["", *HEADERS], ["TOTAL", str(sum(total)), *map(str, total)]]
        lines += [[domain, str(sum(row)), *map(str, row)] for domain, row in ranked]
        return lines

    def render(self, top: int = 10) -> str:
        cells = self.table(top)
        widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
        return "".join(" ".join(cell.rjust(width) for cell, width in zip(line, widths)) + "\n" for line in cells)


def main(argv: list[str], now: float | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymta qshape", description="the queue by domain and age (Postfix qshape)")
    parser.add_argument("--root", default=None, help="pymta root directory (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("--by", choices=("recipient", "sender"), default="recipient",
                        help="count recipients by recipient domain (default) or messages by sender domain")
    parser.add_argument("--queue", choices=tuple(QUEUES), default="all", help="which messages (default all)")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="show the N largest domains (0: all)")
    args = parser.parse_args(argv)
    if args.top < 0:
        parser.error("--top must be 0 or more")
    queuedir = os.path.join(args.root or default_root(), "queue")
    try:
        layout = QueueLayout(queuedir)
        shape = Shape.of(queued_messages(layout, QUEUES[args.queue]), time.time() if now is None else now,
                         by_sender=args.by == "sender")
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        sys.stderr.write(f"pymta qshape: fatal: unable to read {getattr(e, 'filename', None) or queuedir}: {reason}\n")
        return 111
    (out or sys.stdout).write(shape.render(args.top))
    return 0
