# -*- test-case-name: tests.queue.test_preprocess -*-
"""
Preprocessing of committed messages: C{todo/ID} -> C{info}, C{local}, C{remote}
(docs/internals.md, "Data flow of one message", step 4).

For a batch of message ids, each message gets a fresh C{info/N/ID} (its mtime
becomes the birth time) and one C{T} record per recipient in C{local/N/ID}
or C{remote/N/ID} as routing decides.  Then every new file and the
directories holding them are made durable - once per batch, a group commit,
as the queue disk's sync policy says - and only then are C{intd/ID} and
C{todo/ID} removed.  A crash at any point leaves C{todo/ID} in place and the
next start redoes the message from scratch.  The disk's spare files, when it
has any, give the new files their inodes and take back the envelope's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from pymta.control import Controls
from pymta.queue.disk import QueueDisk
from pymta.dsn.stored import DsnFile
from pymta.queue.dsnfile import dsn_file_for, dsn_path, encode_dsn_file, write_dsn_file
from pymta.queue.layout import QueueLayout
from pymta.queue.routing import LOCAL, REMOTE, route_recipient
from pymta.queue.spares import SparePool, create_file, fill_file
from pymta.queue.syncing import SYNC_THREADS, run_parallel
from pymta.queue.sendfiles import QueueFileError, TodoEnvelope, encode, parse_todo

__all__ = ["Preprocessed", "BatchResult", "PreprocessLog", "preprocess_batch", "list_todo"]


@dataclass(frozen=True)
class Preprocessed:
    """One message moved out of todo/: its id, envelope, mess size and recipient count per channel."""

    message_id: int
    envelope: TodoEnvelope
    size: int
    channels: dict[str, int]
    #: what its dsn/N/ID holds (None: it has none)
    dsn: DsnFile | None = None
    #: it has a C{hold/ID} (queued held: a content filter's quarantine), so it is not scheduled
    held: bool = False


@dataclass
class BatchResult:
    """What became of a batch: done, unusable (to quarantine) and failed-for-now messages."""

    done: list[Preprocessed] = field(default_factory=list)
    corrupt: list[tuple[int, str]] = field(default_factory=list)
    trouble: list[tuple[int, str]] = field(default_factory=list)

    def found(self) -> set[int]:
        """The ids whose todo/ file the batch found (the others were gone)."""
        return {p.message_id for p in self.done} | {i for i, _ in self.corrupt} | {i for i, _ in self.trouble}


def list_todo(layout: QueueLayout) -> list[int]:
    """The message ids in C{todo/}, oldest inode numbers first."""
    ids = []
    with os.scandir(layout.dir("todo")) as entries:
        for entry in entries:
            if entry.name.isdigit():
                ids.append(int(entry.name))
    ids.sort()
    return ids


def fsync_files(groups: list[list[int]]) -> list[OSError | None]:
    """
    fsync and close every descriptor of each group; per group the first
    error, or None.  The groups are spread over L{SYNC_THREADS} + 1 lanes
    run in parallel (the disk takes several flushes at once far faster than
    one after the other), so a batch costs a few hand-offs to the fsync
    threads rather than one per message.
    """
    errors: list[OSError | None] = [None] * len(groups)

    def sync_group(index: int) -> None:
        """fsync the group's descriptors, then close every one of them; the first error is the group's."""
        fds = groups[index]
        try:
            for fd in fds:
                os.fsync(fd)
        except OSError as e:
            errors[index] = e
        for fd in fds:
            try:
                os.close(fd)
            except OSError as e:
                errors[index] = errors[index] or e

    def sync_lane(indexes: range) -> None:
        for index in indexes:
            try:
                sync_group(index)
            except Exception as e:  # never lets one group end the lane: the others are still synced
                errors[index] = errors[index] or OSError(f"fsync: {e}")

    lanes = min(len(groups), SYNC_THREADS + 1)
    run_parallel(sync_lane, [range(k, len(groups), lanes) for k in range(lanes)])
    return errors


def _unlink_if_present(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_envelope(layout: QueueLayout, message_id: int, spares: SparePool | None) -> None:
    """Remove C{intd/ID} (into the spares when given) and then C{todo/ID}, the same inode."""
    intd = layout.intd(message_id)
    spare = None
    if spares is not None:
        try:
            spare = spares.park(intd)
        except FileNotFoundError:
            pass
    if spare is None:
        _unlink_if_present(intd)
    try:
        os.unlink(layout.todo(message_id))
    except BaseException:
        if spare is not None:
            _unlink_if_present(spare)
        raise
    if spare is not None and spares is not None:  # a spare comes only from spares
        spares.add(spare, (os.path.dirname(intd), layout.dir("todo")))


def _write_new(path: str, data: bytes, owner: tuple[int, int] | None = None, spares: SparePool | None = None) -> int:
    """Create C{path} (it must not exist; from a spare when there is one), write C{data}; return the open fd for a later fsync."""
    fd = create_file(path, 0o600, spares, owner)
    try:
        fill_file(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class PreprocessLog:
    """
    Told at the moments qmail logs a new message while preprocessing it:
    C{new_msg(id)}, then C{info_msg(id, envelope, size of the message file)}.
    """

    new_msg: Callable[[int], None]
    info_msg: Callable[[int, TodoEnvelope, int], None]


def preprocess_batch(
    disk: QueueDisk,
    message_ids: Iterable[int],
    controls: Controls,
    *,
    log: PreprocessLog | None = None,
    now: float | None = None,
    known: Mapping[int, tuple[TodoEnvelope, int]] | None = None,
) -> BatchResult:
    """
    Preprocess the messages C{message_ids} in the queue on C{disk} (its
    owner gets the new files when running as root, its spare files give
    them their inodes, its sync policy makes the batch durable).
    C{log}, when given, is told of each message as qmail logs C{new msg}
    and C{info msg}.  C{now}, when given, becomes the mtime of the
    new files (the info file's is the birth time, the channel files' the
    next attempt) instead of the file system's clock, so the scheduler's
    clock and the times on disk agree.
    C{known} maps the ids of messages the caller committed itself, and
    never preprocessed before, to their envelope and message file size:
    their todo/ files are not read back, and since no earlier preprocessing
    can have left info or channel files of theirs, none are looked for.
    """
    layout, sync, owner, spares = disk.layout, disk.sync, disk.new_file_owner, disk.spares
    whole_fs = sync.whole_fs
    since = sync.generation  # before the batch's first write (see QueueSync)
    result = BatchResult()
    written: list[tuple[Preprocessed, list[int]]] = []
    dirs: set[str] = set()
    for message_id in message_ids:
        fds: list[int] = []
        dsn: DsnFile | None = None
        try:
            fresh = known.get(message_id) if known is not None else None
            if fresh is not None:
                if not os.path.lexists(layout.todo(message_id)):
                    continue  # finished meanwhile (say by a scan that raced the commit): nothing to do
                envelope, size = fresh
            else:
                try:
                    with open(layout.todo(message_id), "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                envelope = parse_todo(data)
                try:
                    size = os.stat(layout.mess(message_id)).st_size
                except FileNotFoundError:
                    raise QueueFileError(f"todo/{message_id} has no message file") from None
                # what an interrupted earlier preprocessing may have left (a dsn file: write_dsn_file replaces it)
                for path in (layout.local(message_id), layout.remote(message_id), layout.info(message_id)):
                    _unlink_if_present(path)
            info_fd = _write_new(layout.info(message_id), b"F" + encode(envelope.sender) + b"\0", owner, spares)
            fds.append(info_fd)
            if now is not None:
                os.utime(info_fd, (now, now))
            dirs.add(os.path.dirname(layout.info(message_id)))
            if log is not None:
                log.new_msg(message_id)
                log.info_msg(message_id, envelope, size)
            records: dict[str, list[bytes]] = {LOCAL: [], REMOTE: []}
            routed = []
            for recipient in envelope.recipients:
                route = route_recipient(recipient, controls)
                records[route.channel].append(b"T" + encode(route.address) + b"\0")
                routed.append(route.address)
            if envelope.dsn is not None:  # after info/: a dsn file never exists without it
                fds.append(write_dsn_file(layout, message_id, encode_dsn_file(envelope.dsn, routed), owner))
                dsn = dsn_file_for(envelope.dsn, routed)
                dirs.add(os.path.dirname(dsn_path(layout, message_id)))
            for channel, recs in records.items():
                if recs:
                    path = layout.channel(channel, message_id)
                    fd = _write_new(path, b"".join(recs), owner, spares)
                    fds.append(fd)
                    if now is not None:
                        os.utime(fd, (now, now))
                    dirs.add(os.path.dirname(path))
        except QueueFileError as e:
            for fd in fds:
                os.close(fd)
            result.corrupt.append((message_id, str(e)))
            continue
        except OSError as e:
            for fd in fds:
                os.close(fd)
            result.trouble.append((message_id, f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")))
            continue
        counts = {c: len(r) for c, r in records.items() if r}
        held = os.path.exists(layout.hold(message_id))  # made durable before its todo/ID, by the writer
        written.append((Preprocessed(message_id, envelope, size, counts, dsn, held), fds))
    synced: list[Preprocessed] = []
    if whole_fs:
        # the directories' syncfs below makes the new files durable too
        for item, fds in written:
            for fd in fds:
                os.close(fd)
            synced.append(item)
    else:
        for (item, _), error in zip(written, fsync_files([fds for _, fds in written])):
            if error is None:
                synced.append(item)
            else:
                result.trouble.append((item.message_id, f"fsync: {error.strerror}"))
    if not synced:
        return result
    errors = [e for e in sync.directories(sorted(dirs), since) if e is not None]
    if errors:
        first = errors[0]
        reason = f"syncfs: {first.strerror}" if whole_fs else f"fsync of {first.filename}: {first.strerror}"
        result.trouble.extend((item.message_id, reason) for item in synced)
        return result
    for item in synced:
        try:
            _remove_envelope(layout, item.message_id, spares)
        except FileNotFoundError:
            pass
        except OSError as e:
            result.trouble.append((item.message_id, f"unable to unlink todo/{item.message_id}: {e.strerror}"))
            continue
        result.done.append(item)
    # errors ignored (as ever): at worst a crash brings todo/ID back and the message is preprocessed again
    sync.directories([layout.dir("todo")], since)
    if spares is not None:
        spares.settle()
    return result
