"""
Hand the mail of a dead node's queue to this host's queue, for the guide's
chapter on scaling (docs/scaling.md) and for you:

    python3 requeue.py [--root LIVE_ROOT] DEAD_QUEUE

DEAD_QUEUE is the C{queue} directory of a pymta (or qmail) that is not
running: its disk mounted here, or a copy of its files.  Each message in it
is queued again on this host with C{pymta queue} (qmail-queue's interface),
with its sender and the recipients still to do: the C{T} records of
C{todo/ID} for a message not yet preprocessed, else those of
C{local/N/ID} and C{remote/N/ID} (recipients marked C{D} were delivered and
are left out).  Once this host has queued a message, its files are removed
from DEAD_QUEUE, so a run that is interrupted can simply be started again:
only the message being handed over at that moment can arrive twice.

Not carried over: delivery status notification requests (C{dsn/}), holds
(C{hold/}), and failure reports not yet bounced (C{bounce/ID}: printed on
standard error, the recipients they name are not queued again).  The file
formats are those of docs/internals.md, "Queue records".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

#: the files of one message besides its mess file, removed once it is queued here
OTHER_FILES = ("todo", "intd", "info/N", "local/N", "remote/N", "bounce", "dsn/N", "reason/N", "hold")


def records(path: str) -> list[bytes]:
    """The NUL-terminated records of a queue file ([] when it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [r for r in data.split(b"\0") if r]


def envelope_of(queue: str, split: int, mid: int) -> tuple[bytes, list[bytes]] | None:
    """(sender, recipients still to do) of message C{mid}; None when it is no message (a leftover)."""
    n = str(mid % split)
    todo = records(os.path.join(queue, "todo", str(mid)))
    if todo:
        sender = next((r[1:] for r in todo if r[:1] == b"F"), None)
        return None if sender is None else (sender, [r[1:] for r in todo if r[:1] == b"T"])
    info = records(os.path.join(queue, "info", n, str(mid)))
    if not info or info[0][:1] != b"F":
        return None
    rcpts = [r[1:] for channel in ("local", "remote") for r in records(os.path.join(queue, channel, n, str(mid)))
             if r[:1] == b"T"]
    return info[0][1:], rcpts


def forget(queue: str, split: int, mid: int) -> None:
    """Remove the message's files from the dead queue, its message file last."""
    for name in OTHER_FILES:
        path = os.path.join(queue, name.replace("N", str(mid % split)), str(mid))
        if os.path.lexists(path):
            os.unlink(path)
    os.unlink(os.path.join(queue, "mess", str(mid % split), str(mid)))


def main() -> int:
    parser = argparse.ArgumentParser(description="queue a dead node's mail again on this host")
    parser.add_argument("--root", help="this host's pymta root (default: PYMTA_ROOT, else pymta's default)")
    parser.add_argument("queue", help="the dead node's queue directory")
    args = parser.parse_args()
    with open(os.path.join(args.queue, "split")) as f:
        split = int(f.read())
    pymta_queue = ["pymta", "queue"] + (["--root", args.root] if args.root else [])
    ids = sorted(int(name) for n in os.listdir(os.path.join(args.queue, "mess"))
                 for name in os.listdir(os.path.join(args.queue, "mess", n)) if name.isdigit())
    failed = 0
    for mid in ids:
        envelope = envelope_of(args.queue, split, mid)
        if envelope is None:
            continue  # a writer's leftover: never acknowledged
        sender, rcpts = envelope
        bounce = os.path.join(args.queue, "bounce", str(mid))
        if os.path.exists(bounce):
            with open(bounce, "rb") as f:
                print(f"message {mid}: failure reports not yet bounced:\n{f.read().decode(errors='replace')}",
                      file=sys.stderr)
        if rcpts:
            with tempfile.TemporaryFile() as env, open(os.path.join(args.queue, "mess", str(mid % split), str(mid)),
                                                       "rb") as mess:
                env.write(b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0")
                env.seek(0)
                done = subprocess.run(pymta_queue, stdin=mess, stdout=env, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                print(f"message {mid}: not queued here, left in place: {done.stderr.strip()}", file=sys.stderr)
                failed += 1
                continue
        print(f"message {mid}: {len(rcpts)} recipient(s) queued here")
        forget(args.queue, split, mid)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
