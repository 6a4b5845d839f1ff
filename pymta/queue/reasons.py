# -*- test-case-name: tests.queue.test_reasons -*-
"""
Why a message waits: the last error of each undelivered recipient, kept in
C{reason/N/ID} beside the message (docs/internals.md, "The queue on disk").

The file is pymta's own, not qmail's: one JSON object per line, a
L{Reason} each - C{{"ch": "remote", "rcpt": "a@b", "at": 1795643389,
"text": "..."}}, the last line for a recipient being its current reason.
A line whose C{rcpt} is empty is about the whole channel (a pass could not
open).  New reasons are appended (one C{write}); L{compact} rewrites the
file (a temporary file renamed over it) to drop superseded lines and those
of recipients no longer waiting.

Nothing here is ever fsynced and nothing here is on the path of a
delivery result: the scheduler writes a reason only after the result is
checkpointed in the channel file, and losing a reason in a crash is
harmless (the next attempt writes a new one).  Reading is forgiving: a
mangled line is skipped, the file is read up to L{READ_MAX} bytes, texts
are bounded to L{REASON_MAX} characters, and L{shown} makes a text safe to
print.  A reason older than its message's birth belongs to an earlier
message with the same id (inode numbers come back) and is ignored
(L{current}).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

from pymta.queue.disk import QueueDisk
from pymta.queue.layout import QueueLayout

__all__ = ["Reason", "JobReasons", "REASON_MAX", "SHOWN_MAX", "READ_MAX", "CHANNELS", "shown", "read_reasons", "latest",
           "current", "append_reasons", "compact", "remove_reasons"]

#: longest reason text kept (characters)
REASON_MAX = 1000
#: longest reason text printed (characters)
SHOWN_MAX = 300
#: how much of a reason file is read (bytes); later lines are ignored
READ_MAX = 1 << 20
#: longest address kept (characters)
ADDRESS_MAX = 1000
CHANNELS = ("local", "remote")


@dataclass(frozen=True)
class Reason:
    """
    Why one recipient (C{address}; empty: the whole channel) of one channel
    was not delivered at the attempt at C{at} (seconds since the epoch).
    """

    channel: str
    address: str
    at: int
    text: str

    def check(self) -> "Reason":
        """This reason within bounds: L{ValueError} for an unknown channel or a bad time; texts are cut."""
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0:
            raise ValueError(f"bad time {self.at!r}")
        if not isinstance(self.address, str) or not isinstance(self.text, str):
            raise ValueError("address and text must be text")
        return Reason(self.channel, self.address[:ADDRESS_MAX], self.at, self.text[:REASON_MAX])

    def encode(self) -> bytes:
        """One line of the reason file."""
        r = self.check()
        record = {"ch": r.channel, "rcpt": r.address, "at": r.at, "text": r.text}
        # ASCII only: an address's undecodable bytes (surrogates) are escaped and come back as they were
        return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> "Reason":
        """The reason on one line; L{ValueError} when it is not one."""
        if len(line) > 8 * (REASON_MAX + ADDRESS_MAX) + 200:
            raise ValueError("line too long")
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not an object")
        channel, address, at, text = (record.get(k) for k in ("ch", "rcpt", "at", "text"))
        if not (isinstance(channel, str) and isinstance(address, str) and isinstance(text, str)
                and isinstance(at, int)):
            raise ValueError("a field is missing or of the wrong type")
        return cls(channel, address, at, text).check()


@dataclass
class JobReasons:
    """
    What a channel job of the scheduler knows of its lines in the reason
    file (L{pymta.queue.reasonbook.ReasonBook} keeps it up to date).
    """

    #: the file may hold lines of this channel: None is "unknown" (a job found at start)
    kept: bool | None = None
    #: the newest reason of a waiting recipient, once known (a cache for C{pymta ctl queue})
    last: Reason | None = None
    #: lines were appended during the pass: superseded ones are dropped when it closes
    appended: bool = False
    #: recipients delivered or failed for good since their reason was written
    cleared: set[str] = field(default_factory=set)
    #: the file is known not to exist: the job was made by preprocessing in this process (nothing of an
    #: earlier life is left) and wrote nothing since, or its last rewrite removed the file
    absent: bool = False


def shown(text: str, limit: int = SHOWN_MAX) -> str:
    """
    C{text} safe to print on one line: trailing newlines dropped, a newline
    inside shown as C{/} (as in qmail's log), every other character outside
    32..126 as C{_}, cut to C{limit} characters (C{...} marks the cut).
    """
    text = text.rstrip("\n")
    out = "".join("/" if c == "\n" else c if 32 <= ord(c) <= 126 else "_" for c in text[: limit + 1])
    return out[:limit] + "..." if len(out) > limit else out


def read_reasons(layout: QueueLayout, message_id: int) -> list[Reason]:
    """Every readable line of C{reason/N/ID} in order; none when the file is missing or unreadable."""
    try:
        with open(layout.reason(message_id), "rb") as f:
            data = f.read(READ_MAX)
    except OSError:
        return []
    reasons = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            reasons.append(Reason.parse(line))
        except (ValueError, TypeError):
            continue  # a line cut by a crash, or mangled: that reason is lost, no harm done
    return reasons


def latest(reasons: Iterable[Reason]) -> dict[tuple[str, str], Reason]:
    """The current reason per C{(channel, address)}: the last line for it."""
    found: dict[tuple[str, str], Reason] = {}
    for reason in reasons:
        found.pop((reason.channel, reason.address), None)
        found[(reason.channel, reason.address)] = reason  # insertion order stays the order of the attempts
    return found


def current(reasons: dict[tuple[str, str], Reason], channel: str, address: str, birth: int) -> Reason | None:
    """
    Why C{address} of C{channel} waits: its own reason or the channel's,
    whichever is newer, provided it is not older than the message (C{birth}).
    """
    candidates = [r for r in (reasons.get((channel, address)), reasons.get((channel, ""))) if r is not None]
    candidates = [r for r in candidates if r.at >= birth]
    return max(candidates, key=lambda r: r.at, default=None)


def _open_for_append(disk: QueueDisk, message_id: int) -> int:
    path = disk.layout.reason(message_id)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        # a queue made before reason/ existed: its directory is made on first use
        _make_dir(disk, os.path.dirname(path))
        return os.open(path, flags, 0o600)


def _make_dir(disk: QueueDisk, path: str) -> None:
    for directory in (os.path.dirname(path), path):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        if disk.owner is not None:
            os.chown(directory, *disk.owner)


def append_reasons(disk: QueueDisk, message_id: int, reasons: list[Reason]) -> None:
    """Add C{reasons} to the message's reason file in one write (OSError when that fails)."""
    data = b"".join(r.encode() for r in reasons)
    if not data:
        return
    fd = _open_for_append(disk, message_id)
    try:
        if disk.owner is not None:
            os.fchown(fd, *disk.owner)
        os.write(fd, data)  # a short write leaves a cut line, which readers skip
    finally:
        os.close(fd)


def compact(disk: QueueDisk, message_id: int, keep: Callable[[Reason], bool]) -> list[Reason]:
    """
    Rewrite the reason file with the current reason of each recipient that
    C{keep} accepts (written to a temporary file, renamed over the old one;
    removed when nothing is left).  Returns what is kept.
    """
    layout = disk.layout
    kept = [r for r in latest(read_reasons(layout, message_id)).values() if keep(r)]
    path = layout.reason(message_id)
    if not kept:
        remove_reasons(layout, message_id)
        return kept
    temporary = os.path.join(os.path.dirname(path), f".{message_id}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        if disk.owner is not None:
            os.fchown(fd, *disk.owner)
        data = b"".join(r.encode() for r in kept)
        if os.write(fd, data) != len(data):
            raise OSError("short write", temporary)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.rename(temporary, path)
    return kept


def remove_reasons(layout: QueueLayout, message_id: int) -> None:
    """Remove the message's reason file (missing is fine; other OSErrors are raised)."""
    try:
        os.unlink(layout.reason(message_id))
    except FileNotFoundError:
        pass
