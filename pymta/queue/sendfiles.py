# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The queue files pymta-send reads and writes (reference §1.2, §1.6-§1.8).

- C{todo/ID}: C{u<uid>\\0p<pid>\\0F<sender>\\0T<rcpt>\\0...} as the queue
  writer left it (L{parse_todo});
- C{info/N/ID}: C{F<sender>\\0}, its mtime the message's birth (L{read_info});
- C{local/N/ID}, C{remote/N/ID}: C{T<rcpt>\\0} (to do) and C{D<rcpt>\\0}
  (done) records (L{parse_channel_file}, L{mark_done});
- C{bounce/ID}: accumulated failure reports (L{append_bounce}).

Addresses are decoded as UTF-8 with C{surrogateescape}, so any byte string
found on disk survives the round trip unchanged.  A file that breaks the
format raises L{QueueFileError}; the scheduler quarantines that message.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

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


class QueueFileError(Exception):
    """A queue file does not follow the format; the text says what is wrong."""


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class TodoEnvelope:
    """The records of a C{todo/ID} file."""

    uid: int
    pid: int
    sender: str
    recipients: tuple[str, ...]


def _records(data: bytes, what: str) -> list[bytes]:
    if not data:
        raise QueueFileError(f"{what} is empty")
    if not data.endswith(b"\0"):
        raise QueueFileError(f"{what} is truncated (last record has no NUL)")
    return data[:-1].split(b"\0")


def _number(raw: bytes) -> int:
    digits = b""
    for ch in raw:
        if 48 <= ch <= 57:
            digits += bytes([ch])
        else:
            break
    return int(digits) if digits else 0


def parse_todo(data: bytes) -> TodoEnvelope:
    """Parse a C{todo/ID} file."""
    uid = pid = 0
    sender: str | None = None
    recipients: list[str] = []
    for record in _records(data, "envelope"):
        kind, value = record[:1], record[1:]
        if kind == b"u":
            uid = _number(value)
        elif kind == b"p":
            pid = _number(value)
        elif kind == b"F":
            if sender is not None:
                raise QueueFileError("envelope has two sender records")
            sender = decode(value)
        elif kind == b"T":
            if sender is None:
                raise QueueFileError("envelope has a recipient before its sender")
            recipients.append(decode(value))
        else:
            raise QueueFileError(f"unknown envelope record {record[:20]!r}")
    if sender is None:
        raise QueueFileError("envelope has no sender record")
    return TodoEnvelope(uid, pid, sender, tuple(recipients))


def parse_info(data: bytes) -> str:
    """The sender in an C{info/N/ID} file."""
    end = data.find(b"\0")
    if end == -1 or not data.startswith(b"F"):
        raise QueueFileError("info file has no sender record")
    return decode(data[1:end])


def read_info(layout: QueueLayout, message_id: int) -> tuple[str, int]:
    """C{(sender, birth)} of a preprocessed message; OSError when unreadable."""
    with open(layout.info(message_id), "rb") as f:
        birth = int(os.fstat(f.fileno()).st_mtime)
        data = f.read(4096 + 1100)
    return parse_info(data), birth


@dataclass(frozen=True)
class ChannelRecord:
    """One record of a channel file: its byte offset, C{T} or C{D}, the address."""

    offset: int
    done: bool
    address: str


def parse_channel_file(data: bytes) -> list[ChannelRecord]:
    """All records of a C{local/N/ID} or C{remote/N/ID} file."""
    records: list[ChannelRecord] = []
    if not data:
        return records
    if not data.endswith(b"\0"):
        raise QueueFileError("recipient file is truncated (last record has no NUL)")
    offset = 0
    for raw in data[:-1].split(b"\0"):
        kind = raw[:1]
        if kind not in (b"T", b"D"):
            raise QueueFileError(f"unknown recipient record {raw[:20]!r} at offset {offset}")
        records.append(ChannelRecord(offset, kind == b"D", decode(raw[1:])))
        offset += len(raw) + 1
    return records


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


def append_bounce(layout: QueueLayout, message_id: int, entry: bytes) -> None:
    """Append one recipient's failure block to C{bounce/ID}."""
    fd = os.open(layout.bounce(message_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(entry)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def quarantine_message(layout: QueueLayout, message_id: int) -> str:
    """
    Move every file of a message into C{quarantine/ID[.n]/} (mess, todo, intd,
    info, local, remote, bounce) and return that directory.
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
    }
    for name, path in sources.items():
        try:
            os.rename(path, os.path.join(target, name))
        except FileNotFoundError:
            pass
    return target
