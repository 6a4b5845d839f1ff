# -*- test-case-name: tests.queue.test_ctldisk -*-
"""
The disk side of C{pymta ctl}'s queue actions (docs/internals.md, "Acting
on the queue while it runs"): hold markers and the order in which a
message is deleted.

- A held message has an empty C{hold/ID} next to its C{info/N/ID}; its
  mtime is when it was held.  The marker is written only for a preprocessed
  message and removed before anything else of the message goes, so a marker
  never outlives the message file (whose inode number is the id).
- L{delete_messages} removes C{info/N/ID} and C{todo/ID} first and makes
  that durable: that is the commit point, after which neither the start's
  scan nor a todo/ scan can find the message.  Only then go the channel
  files, C{bounce/ID}, C{hold/ID}, C{intd/ID} and last the message file.
  A crash in between leaves files under an id with neither C{info} nor
  C{todo}: the crash cleaner (L{pymta.queue.cleaner}) finishes the job at
  the next start.
"""

from __future__ import annotations

import os

from pymta.queue.disk import QueueDisk
from pymta.queue.dsnfile import dsn_path
from pymta.queue.layout import QueueLayout

__all__ = ["list_held", "write_holds", "remove_holds", "delete_messages", "leftover_paths"]


def list_held(layout: QueueLayout) -> set[int]:
    """The ids with a C{hold/} marker (none when the directory does not exist yet)."""
    try:
        names = os.listdir(layout.dir("hold"))
    except FileNotFoundError:
        return set()
    return {int(name) for name in names if name.isdigit()}


def _hold_dir(disk: QueueDisk) -> str:
    path = disk.layout.dir("hold")
    if not os.path.isdir(path):
        # a queue made before hold/ existed: made on first use
        os.makedirs(path, 0o700, exist_ok=True)
        if disk.owner is not None:
            os.chown(path, *disk.owner)
    return path


def _sync(disk: QueueDisk, dirs: set[str]) -> OSError | None:
    errors = [e for e in disk.sync.directories(sorted(dirs)) if e is not None]
    return errors[0] if errors else None


def write_holds(disk: QueueDisk, message_ids: list[int]) -> dict[int, OSError]:
    """Create the markers of C{message_ids} and make them durable; the error of each that failed."""
    failed: dict[int, OSError] = {}
    if not message_ids:
        return failed
    try:
        directory = _hold_dir(disk)
    except OSError as e:
        return {message_id: e for message_id in message_ids}
    written = []
    for message_id in message_ids:
        try:
            fd = os.open(os.path.join(directory, str(message_id)), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if disk.owner is not None:
                    os.fchown(fd, *disk.owner)
            finally:
                os.close(fd)
        except OSError as e:
            failed[message_id] = e
            continue
        written.append(message_id)
    error = _sync(disk, {directory}) if written else None
    if error is not None:
        failed.update({message_id: error for message_id in written})
    return failed


def remove_holds(disk: QueueDisk, message_ids: list[int]) -> dict[int, OSError]:
    """Remove the markers of C{message_ids} (missing ones are fine) durably; the error of each that failed."""
    failed: dict[int, OSError] = {}
    removed = []
    for message_id in message_ids:
        try:
            os.unlink(disk.layout.hold(message_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            failed[message_id] = e
            continue
        removed.append(message_id)
    error = _sync(disk, {disk.layout.dir("hold")}) if removed else None
    if error is not None:
        failed.update({message_id: error for message_id in removed})
    return failed


def _unlink(path: str) -> None:
    """Remove C{path} (gone already is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def leftover_paths(layout: QueueLayout, message_id: int) -> tuple[str, ...]:
    """A message's files after its commit point, in the order they are removed (the message file last)."""
    return (layout.local(message_id), layout.remote(message_id), layout.bounce(message_id),
            layout.reason(message_id), layout.hold(message_id), dsn_path(layout, message_id),
            layout.intd(message_id), layout.mess(message_id))


def delete_messages(disk: QueueDisk, message_ids: list[int]) -> dict[int, OSError]:
    """
    Delete C{message_ids} from the queue (see the module docstring for the
    order).  Returns the error of each message that could not be deleted:
    one whose commit point failed is intact; one that failed after it is
    deleted, and its files are left to the cleaner.
    """
    layout = disk.layout
    failed: dict[int, OSError] = {}
    committed = []
    dirs: set[str] = set()
    for message_id in message_ids:
        try:
            for path in (layout.info(message_id), layout.todo(message_id)):
                _unlink(path)
                dirs.add(os.path.dirname(path))
        except OSError as e:
            failed[message_id] = e
            continue
        committed.append(message_id)
    error = _sync(disk, dirs) if committed else None
    if error is not None:
        # gone from the directories already; whether durably is unknown: left to the cleaner after a crash
        return {**failed, **{message_id: error for message_id in committed}}
    for message_id in committed:
        for path in leftover_paths(layout, message_id):
            try:
                _unlink(path)
            except OSError as e:
                failed[message_id] = e
                break
    return failed
