# -*- test-case-name: tests.cli.test_qread -*-
"""
C{pymta qread [--root DIR]}: qmail-qread's listing (see docs/internals.md,
'Administrative tools').

For every message in C{queue/info/} (split directories in order, entries in
directory order)::

    25 Nov 2026 21:49:49 GMT  #2179597  235  <me@test.example> [ bouncing][ held]
    \\tremote\\tuser@other.example
    \\t\\t25 Nov 2026 21:56:29 GMT (Sorry, I wasn't able to establish an SMTP connection. (#4.4.1))
      done\\tlocal\\tdone@here.example

The date is the C{info} file's mtime (the message's birth), the size that
of the C{mess} file; the sender line ends in a space.  Characters outside
32..126 print as C{_}.  Under a recipient still to do, pymta adds why it
waits when pymta-send kept a reason (C{queue/reason/}, see
L{pymta.queue.reasons}): two tabs, the time of the attempt and the last
error in parentheses, as Postfix's C{mailq} shows it (one line, cut at
L{pymta.queue.reasons.SHOWN_MAX} characters).  A message that cannot be
read prints C{warning: trouble with #ID: REASON} and the listing goes on.  Messages not
yet preprocessed (only in C{todo/}) are not listed, as in qmail.  An
unreadable queue prints C{fatal: ...} and exits 111.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator, TextIO

from pymta.address import qmail_date
from pymta.control import default_root
from pymta.queue.envelope import address_text
from pymta.queue.layout import QueueLayout
from pymta.queue.reasons import Reason, current, latest, read_reasons, shown

__all__ = ["main", "qread", "printable", "reason_line", "message_ids", "first_record", "channel_records"]


def printable(raw: bytes) -> str:
    """qmail-qread's output filter: bytes outside 32..126 become C{_}."""
    return "".join(chr(b) if 32 <= b <= 126 else "_" for b in raw)


def reason_line(reason: Reason) -> str:
    """The line under a waiting recipient that says why it waits."""
    return f"\t\t{qmail_date(reason.at)[: -len(' -0000')]} GMT ({shown(reason.text)})"


def first_record(data: bytes) -> bytes:
    """The first NUL-terminated record of a queue file (an info file's C{F<sender>})."""
    end = data.find(b"\0")
    return data if end == -1 else data[:end]


def message_ids(layout: QueueLayout) -> Iterator[int]:
    """The ids of the preprocessed messages (C{info/}), split directories in order."""
    top = layout.dir("info")
    for n in range(layout.split):
        sub = os.path.join(top, str(n))
        with os.scandir(sub) as entries:
            for entry in entries:
                if entry.name.isdigit():
                    yield int(entry.name)


def channel_records(layout: QueueLayout, channel: str, message_id: int) -> list[bytes]:
    """The C{T}/C{D} records of a message's C{local} or C{remote} file; none when it has no such file."""
    try:
        with open(layout.channel(channel, message_id), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return data.split(b"\0")[:-1]


def _describe(layout: QueueLayout, message_id: int) -> list[str]:
    size = os.stat(layout.mess(message_id)).st_size
    bouncing = os.path.exists(layout.bounce(message_id))
    held = os.path.exists(layout.hold(message_id))  # pymta ctl hold
    with open(layout.info(message_id), "rb") as f:
        sender = first_record(f.read())[1:]
        born = os.fstat(f.fileno()).st_mtime
    date = qmail_date(born)[: -len(" -0000")]
    head = f"{date} GMT  #{message_id}  {size}  <".encode() + sender + b"> " + (b" bouncing" if bouncing else b"") + (b" held" if held else b"")
    lines = [printable(head)]
    reasons = latest(read_reasons(layout, message_id))
    for channel in ("local", "remote"):
        for record in channel_records(layout, channel, message_id):
            kind = record[:1]
            if kind == b"D":
                lines.append(f"  done\t{channel}\t{printable(record[1:])}")
            elif kind == b"T":
                lines.append(f"\t{channel}\t{printable(record[1:])}")
                reason = current(reasons, channel, address_text(record[1:]), int(born)) if reasons else None
                if reason is not None:
                    lines.append(reason_line(reason))
    return lines


def qread(layout: QueueLayout, out: TextIO) -> None:
    """Write the listing to C{out}; C{OSError} only when the info directories cannot be read."""
    for message_id in message_ids(layout):
        try:
            lines = _describe(layout, message_id)
        except OSError as e:
            out.write(f"warning: trouble with #{message_id}: {e.strerror}\n")
            continue
        out.write("".join(line + "\n" for line in lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta qread", description="list queued messages (qmail-qread)")
    parser.add_argument("--root", default=None, help="pymta root directory (default $PYMTA_ROOT or /var/pymta)")
    args = parser.parse_args(argv)
    queuedir = os.path.join(args.root or default_root(), "queue")
    try:
        layout = QueueLayout(queuedir)
        qread(layout, sys.stdout)
    except BrokenPipeError:
        raise  # the reader went away: not trouble with the queue (pymta.cli.pipes)
    except (OSError, ValueError) as e:
        sys.stdout.flush()
        reason = e.strerror if isinstance(e, OSError) else str(e)
        sys.stdout.write(f"fatal: unable to read {getattr(e, 'filename', None) or queuedir}: {reason}\n")
        return 111
    return 0
