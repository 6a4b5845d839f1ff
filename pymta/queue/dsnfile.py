# -*- test-case-name: tests.queue.test_dsnqueue -*-
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
has neither C{todo/ID} nor C{info/N/ID}.  C{S} records are appended by the
checkpoint before the recipient is marked done and are not fsynced (as
C{bounce/ID} is not); a failed append is cut back, and a torn one (a
crash) is skipped by the parser.  pymta-send reads these files only at a
start (L{pymta.queue.dsnbook}).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.dsn.stored import DsnFile
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
    "dsn_file_for",
    "parse_dsn_file",
    "read_dsn_file",
    "read_dsn_path",
    "read_dsn_bytes",
    "write_dsn_file",
    "append_success",
    "remove_dsn_file",
]

#: what a success report says happened (RFC 3464 Action values)
ACTIONS = ("delivered", "relayed")
#: a dsn file is small: a request per recipient; more than this is not ours
MAX_DSN_FILE = 4 << 20


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


def dsn_file_for(dsn: MessageDsn, routed: Sequence[str]) -> DsnFile:
    """What L{parse_dsn_file} finds in L{encode_dsn_file}C{(dsn, routed)}, without the bytes."""
    requests: dict[str, RecipientDsn] = {}
    for index, address in enumerate(routed):
        request = dsn.for_recipient(index)
        if not request.plain:
            requests.setdefault(address, request)
    return DsnFile(dsn.ret, dsn.envid, requests)


def parse_dsn_file(data: bytes, bad: Callable[[bytes], None] | None = None) -> DsnFile:
    """
    L{EnvelopeError} when C{data} is not a dsn file.  A truncated last C{S}
    record (a crash) is ignored, and so is a malformed one (what is left of
    a torn append, run into by the next): C{bad} is told of it.  Nothing
    else is ever appended, so the requests are whole or the file is not one.
    """
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
                if bad is not None:
                    bad(record[:80])
                continue
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


def read_dsn_path(path: str, bad: Callable[[bytes], None] | None = None) -> DsnFile | None:
    """The dsn file at C{path}, None when there is none; OSError, L{EnvelopeError} as they come."""
    data = read_dsn_bytes(path)
    return None if data is None else parse_dsn_file(data, bad)


def read_dsn_bytes(path: str) -> bytes | None:
    """The bytes of the dsn file at C{path}, None when there is none; OSError, L{EnvelopeError} (too large)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DSN_FILE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_DSN_FILE:
        raise EnvelopeError("dsn file too large")
    return data


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


def append_success(layout: QueueLayout, message_id: int, action: str, address: str, torn: bool = False) -> None:
    """
    Append an C{S} record (the file exists: only a message with requests
    asks for one); C{torn}: the file ends in a torn record, which a NUL
    ends first.  Should the write fail (ENOSPC half way), the file is cut
    back to its old size, so that no torn record is left to run into.
    """
    if action not in ACTIONS:
        raise ValueError(action)
    record = b"\0" * torn + b"S" + action.encode("ascii") + b":" + address_bytes(address) + b"\0"
    fd = os.open(dsn_path(layout, message_id), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, record)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the parser skips what is left (a malformed S record)
            raise
    finally:
        os.close(fd)


def remove_dsn_file(layout: QueueLayout, message_id: int) -> None:
    """Remove C{dsn/N/ID} if there is one; other OSErrors propagate."""
    try:
        os.unlink(dsn_path(layout, message_id))
    except FileNotFoundError:
        pass
