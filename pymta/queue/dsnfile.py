# -*- test-case-name: tests.queue.test_dsnfile -*-
"""
C{dsn/N/ID}: a preprocessed message's DSN data (RFC 3461), pymta's own file
beside qmail's layout (docs/internals.md, "DSN data in the queue").  Only a
message whose client asked for more than the defaults has one.

Records end with a NUL, like the other queue files::

    R<FULL|HDRS>  E<envid xtext>                     the message's (optional)
    T<routed recipient>  N<notify>  O<orcpt>         one request (N, O optional)
    S<action>:<routed recipient>                     appended: a success to report

The C{T} records hold the recipients as the channel files do (after
routing), so a delivery result finds its request by address.  The file is
written by preprocessing in the same durable batch as C{info/N/ID} (after
it), removed by finishing before C{info/N/ID}, and moved into
C{quarantine/} with the rest; the crash cleaner removes one whose message
has no C{info/N/ID}.  C{S} records are appended by the checkpoint before the
recipient is marked done and are not fsynced (as C{bounce/ID} is not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.fsutil import write_all
from pymta.queue.envelope import (
    DsnRecords,
    EnvelopeError,
    address_bytes,
    address_text,
    encode_message_dsn,
    encode_recipient_dsn,
)
from pymta.queue.layout import QueueLayout

__all__ = [
    "ACTIONS",
    "DsnFile",
    "dsn_path",
    "encode_dsn_file",
    "parse_dsn_file",
    "read_dsn_file",
    "read_dsn_path",
    "dsn_path_for_message",
    "write_dsn_file",
    "append_success",
    "remove_dsn_file",
]

#: what a success report says happened (RFC 3464 Action values)
ACTIONS = ("delivered", "relayed")
#: a dsn file is small: a request per recipient; more than this is not ours
MAX_DSN_FILE = 4 << 20


@dataclass(frozen=True)
class DsnFile:
    """What C{dsn/N/ID} holds: the message's data, the requests by routed address, successes to report."""

    ret: str | None = None
    envid: str | None = None
    requests: dict[str, RecipientDsn] = field(default_factory=dict)
    #: routed recipient -> RFC 3464 action, in the order they were recorded
    successes: dict[str, str] = field(default_factory=dict)

    def request(self, address: str) -> RecipientDsn:
        """The request of the recipient C{address} (as routed); the defaults when it has none."""
        return self.requests.get(address, RecipientDsn())


def dsn_path(layout: QueueLayout, message_id: int) -> str:
    return os.path.join(layout.queuedir, "dsn", layout.subdir(message_id), str(message_id))


def encode_dsn_file(dsn: MessageDsn, routed: Sequence[str]) -> bytes:
    """The content of C{dsn/N/ID}: C{routed[i]} is the envelope's recipient i after routing."""
    parts = [encode_message_dsn(dsn)]
    for index, address in enumerate(routed):
        request = dsn.for_recipient(index)
        if not request.plain:
            parts += [b"T", address_bytes(address), b"\0", encode_recipient_dsn(request)]
    return b"".join(parts)


def parse_dsn_file(data: bytes) -> DsnFile:
    """L{EnvelopeError} when C{data} is not a dsn file (a truncated last C{S} record is ignored: a crash)."""
    records = data.split(b"\0")
    if records[-1] and not records[-1].startswith(b"S"):
        raise EnvelopeError("dsn file: truncated record")
    found = DsnRecords()
    addresses: list[str] = []
    successes: dict[str, str] = {}
    for record in records[:-1]:
        kind, value = record[:1], record[1:]
        if kind == b"T":
            found.recipient()
            addresses.append(address_text(value))
        elif kind == b"S":
            action, colon, done = value.partition(b":")
            if not colon or action.decode("ascii", "replace") not in ACTIONS:
                raise EnvelopeError(f"dsn file: bad S record {record[:40]!r}")
            successes.setdefault(address_text(done), action.decode("ascii"))
        elif not found.take(kind, value):
            raise EnvelopeError(f"dsn file: unknown record {record[:40]!r}")
    requests: dict[str, RecipientDsn] = {}
    for address, request in zip(addresses, found.recipients):
        requests.setdefault(address, request)
    return DsnFile(found.ret, found.envid, requests, successes)


def read_dsn_file(layout: QueueLayout, message_id: int) -> DsnFile | None:
    """The message's dsn file, None when it has none; OSError, L{EnvelopeError} as they come."""
    return read_dsn_path(dsn_path(layout, message_id))


def dsn_path_for_message(message_path: str) -> str:
    """C{QUEUE/dsn/N/ID} for the message file C{QUEUE/mess/N/ID}."""
    subdir, name = os.path.split(message_path)
    top, n = os.path.split(subdir)
    return os.path.join(os.path.dirname(top), "dsn", n, name)


def read_dsn_path(path: str) -> DsnFile | None:
    """The dsn file at C{path}, None when there is none; OSError, L{EnvelopeError} as they come."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DSN_FILE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_DSN_FILE:
        raise EnvelopeError("dsn file too large")
    return parse_dsn_file(data)


def _ensure_directory(layout: QueueLayout, path: str, owner: tuple[int, int] | None) -> None:
    """
    Make C{dsn/} and C{dsn/N} when a queue made before them lacks them, each
    made durable in its parent (rare: once per directory in a queue's life).
    """
    directory = os.path.dirname(path)
    if os.path.isdir(directory):
        return
    for made, parent in ((os.path.dirname(directory), layout.queuedir), (directory, os.path.dirname(directory))):
        try:
            os.mkdir(made, 0o700)
        except FileExistsError:
            continue
        if owner is not None:
            os.chown(made, *owner)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_dsn_file(layout: QueueLayout, message_id: int, data: bytes, owner: tuple[int, int] | None = None) -> int:
    """
    Create C{dsn/N/ID} afresh with C{data} (what an interrupted earlier
    attempt left is replaced); the open descriptor, for the caller's fsync.
    """
    path = dsn_path(layout, message_id)
    _ensure_directory(layout, path, owner)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_success(layout: QueueLayout, message_id: int, action: str, address: str) -> None:
    """Append an C{S} record (the file exists: only a message with requests asks for one)."""
    if action not in ACTIONS:
        raise ValueError(action)
    fd = os.open(dsn_path(layout, message_id), os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, b"S" + action.encode("ascii") + b":" + address_bytes(address) + b"\0")
    finally:
        os.close(fd)


def remove_dsn_file(layout: QueueLayout, message_id: int) -> None:
    """Remove C{dsn/N/ID} if there is one; other OSErrors propagate."""
    try:
        os.unlink(dsn_path(layout, message_id))
    except FileNotFoundError:
        pass
