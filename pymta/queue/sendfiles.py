# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The queue files pymta-send reads and writes (see docs/internals.md, 'Queue records').

- C{todo/ID}: C{u<uid>\\0p<pid>\\0F<sender>\\0T<rcpt>\\0...} as the queue
  writer left it (L{parse_todo});
- C{info/N/ID}: C{F<sender>\\0}, its mtime the message's birth (L{read_info});
- C{local/N/ID}, C{remote/N/ID}: C{T<rcpt>\\0} (to do) and C{D<rcpt>\\0}
  (done) records (L{parse_channel_file}, L{mark_done});
- C{bounce/ID}: accumulated failure reports (L{append_bounce}).

The record formats themselves are parsed by L{pymta.queue.envelope} (shared
with the queue writer); this module adds the file operations of the queue
manager.  A file that breaks the format raises L{QueueFileError}; the
scheduler quarantines that message.
"""

from __future__ import annotations

import errno
import os

from pymta.fsutil import write_all
from pymta.queue.envelope import (
    Envelope,
    EnvelopeError,
    RecipientRecord,
    address_bytes,
    address_text,
    parse_info,
    parse_recipients,
    parse_todo,
)
from pymta.queue.dsnfile import dsn_path
from pymta.queue.layout import QueueLayout

__all__ = [
    "QueueFileError",
    "TodoEnvelope",
    "ChannelRecord",
    "parse_todo",
    "parse_info",
    "read_info",
    "parse_channel_file",
    "read_channel_file",
    "mark_done",
    "append_bounce",
    "quarantine_message",
    "decode",
    "encode",
]


#: a queue file that breaks the format (the message is quarantined)
QueueFileError = EnvelopeError
TodoEnvelope = Envelope
ChannelRecord = RecipientRecord
parse_channel_file = parse_recipients
decode = address_text
encode = address_bytes


def read_info(layout: QueueLayout, message_id: int) -> tuple[str, int]:
    """C{(sender, birth)} of a preprocessed message; OSError when unreadable."""
    with open(layout.info(message_id), "rb") as f:
        birth = int(os.fstat(f.fileno()).st_mtime)
        data = f.read()
    return parse_info(data), birth


def read_channel_file(path: str) -> list[ChannelRecord]:
    with open(path, "rb") as f:
        return parse_channel_file(f.read())


def mark_done(path: str, offset: int) -> None:
    """Overwrite the C{T} at C{offset} with C{D} in place (qmail does not fsync this)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.pwrite(fd, b"D", offset) != 1:
            raise OSError(errno.EIO, "short write", path)
    finally:
        os.close(fd)


def append_bounce(layout: QueueLayout, message_id: int, entry: bytes, owner: tuple[int, int] | None = None) -> None:
    """Append one recipient's failure block to C{bounce/ID} (created for C{owner} when given)."""
    fd = os.open(layout.bounce(message_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        write_all(fd, entry)
    finally:
        os.close(fd)


def quarantine_message(layout: QueueLayout, message_id: int) -> str:
    """
    Move every file of a message into C{quarantine/ID[.n]/} (mess, todo, intd,
    info, local, remote, bounce, reason, hold, dsn) and return that directory.
    """
    base = os.path.join(layout.dir("quarantine"), str(message_id))
    os.makedirs(layout.dir("quarantine"), mode=0o700, exist_ok=True)
    target = base
    n = 1
    while True:
        try:
            os.mkdir(target, 0o700)
            break
        except FileExistsError:
            target = f"{base}.{n}"
            n += 1
    sources = {
        "mess": layout.mess(message_id),
        "todo": layout.todo(message_id),
        "intd": layout.intd(message_id),
        "info": layout.info(message_id),
        "local": layout.local(message_id),
        "remote": layout.remote(message_id),
        "bounce": layout.bounce(message_id),
        "reason": layout.reason(message_id),
        "hold": layout.hold(message_id),
        "dsn": dsn_path(layout, message_id),
    }
    for name, path in sources.items():
        try:
            os.rename(path, os.path.join(target, name))
        except FileNotFoundError:
            pass
    return target
