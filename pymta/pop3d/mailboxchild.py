# -*- test-case-name: tests.pop3d.test_childmailbox -*-
"""
The per-session mailbox server of a system user:
C{python -m pymta.pop3d.mailboxchild UID GID MAILDIR}.

Started as root by pop3d (or as the user itself), it becomes the user
(L{pymta.privsep.become}: uid 0 and gid 0 refused, checked afterwards),
and only then touches the Maildir.  The network-facing process never reads
the user's files; it talks to this child over stdin/stdout, one request at
a time (no reactor here, no Twisted import):

  request                  reply
  C{LOAD}                  C{OK n} then n lines C{uid size}; or C{NOMAILDIR};
                           or C{ERR text}
  C{RETR i k}              C{NOFILE}; or C{OK} then frames C{len\\n<bytes>}
                           of the encoded reply (stuffed, terminator
                           included), ended by C{0\\n}.  C{k} is C{-} for the
                           whole message or the TOP line count.
  C{COMMIT i,j,...}        C{OK 1} (all gone) or C{OK 0}

Indexes are 0-based.  EOF on stdin ends the child; nothing is deleted
without a C{COMMIT}.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, Iterable

from pymta.pop3d.encoding import CHUNK_SIZE, MessageEncoder
from pymta.pop3d.maildir import MaildirStore, MessageUnavailable, NoMaildir
from pymta.privsep import PrivilegeDropError, become

__all__ = ["main", "serve"]

EXIT_USAGE = 2
EXIT_PRIVILEGES = 3


def _send_message(store: MaildirStore, index: int, top: int | None, out: BinaryIO) -> None:
    try:
        f = store.open(index)
    except (MessageUnavailable, IndexError):
        out.write(b"NOFILE\n")
        return
    out.write(b"OK\n")
    encoder = MessageEncoder(top)
    with f:
        while not encoder.done:
            chunk = f.read(CHUNK_SIZE)
            if not chunk:
                break
            data = encoder.feed(chunk)
            if data:
                out.write(b"%d\n" % len(data) + data)
    tail = encoder.finish()
    out.write(b"%d\n" % len(tail) + tail + b"0\n")


def serve(store: MaildirStore, inp: Iterable[bytes], out: BinaryIO) -> None:
    """Answer requests from C{inp} until EOF."""
    for raw in inp:
        words = raw.rstrip(b"\n").split(b" ")
        command = words[0]
        if command == b"LOAD":
            try:
                messages = store.load()
            except NoMaildir:
                out.write(b"NOMAILDIR\n")
            except OSError as e:
                out.write(b"ERR %s\n" % str(e).encode("utf-8", "replace").replace(b"\n", b" "))
            else:
                lines = [b"OK %d\n" % len(messages)]
                lines += [b"%s %d\n" % (m.uid.encode("ascii"), m.size) for m in messages]
                out.write(b"".join(lines))
        elif command == b"RETR" and len(words) == 3 and words[1].isdigit():
            top = None if words[2] == b"-" else int(words[2])
            _send_message(store, int(words[1]), top, out)
        elif command == b"COMMIT" and len(words) == 2:
            indexes = [int(w) for w in words[1].split(b",") if w.isdigit()]
            indexes = [i for i in indexes if i < len(store.messages)]
            out.write(b"OK %d\n" % (1 if store.commit(indexes) else 0))
        else:
            out.write(b"ERR bad request\n")
        out.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[0].isdigit() or not argv[1].isdigit():
        sys.stderr.write("usage: python -m pymta.pop3d.mailboxchild UID GID MAILDIR\n")
        return EXIT_USAGE
    try:
        become(int(argv[0]), int(argv[1]))
    except PrivilegeDropError as e:
        sys.stderr.write(f"mailboxchild: {e}\n")
        return EXIT_PRIVILEGES
    os.umask(0o077)
    store = MaildirStore(argv[2])
    try:
        serve(store, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
