# -*- test-case-name: tests.pop3d.test_spawner -*-
"""
The root mailbox spawner: C{python -m pymta.pop3d.spawner} with fd 3 a UNIX
stream socket to pop3d.

pop3d starts it in C{privilegedStartService}, while still root, so that
after twistd drops pop3d to its own uid (C{--uid}) system users can still be
served by children running as themselves.  It is small and has no reactor:
it reads requests from fd 3 only (nobody else holds the other end), and per
request forks a mailbox child (the already imported
L{pymta.pop3d.mailboxchild}: about a millisecond instead of a new
interpreter), which drops to the user (setgroups, setgid, setuid; uid 0
refused) before it touches the Maildir.  The child talks to pop3d over a
fresh socketpair whose other end travels back to pop3d with SCM_RIGHTS.

Request::  C{OPEN <id> <uid> <gid> <hex of the maildir path>\\n}
Reply::    C{OK <id>\\n} with one descriptor attached, or C{ERR <id> <text>\\n}

EOF on fd 3 (pop3d gone) ends the spawner; SIGCHLD is ignored, so the
kernel reaps finished children.
"""

from __future__ import annotations

import array
import os
import signal
import socket
import sys

from pymta.pop3d.mailboxchild import drop_privileges, serve
from pymta.pop3d.maildir import MaildirStore

__all__ = ["main", "handle_request", "SPAWNER_FD"]

SPAWNER_FD = 3
MAX_REQUEST = 8192


def _run_child(sock: socket.socket, uid: int, gid: int, maildir: str) -> None:
    """In the forked child: become the user, then serve the mailbox on C{sock}. Never returns."""
    code = 0
    try:
        os.dup2(sock.fileno(), 0)
        os.dup2(sock.fileno(), 1)
        sock.close()
        drop_privileges(uid, gid)
        os.umask(0o077)
        with os.fdopen(0, "rb", buffering=0) as raw_in, os.fdopen(1, "wb") as out:
            serve(MaildirStore(maildir), _LineReader(raw_in), out)
    except BrokenPipeError:
        pass
    except BaseException as e:  # the child must never return into the spawner's loop
        try:
            sys.stderr.write(f"mailbox child: {e}\n")
        except Exception:
            pass
        code = 1
    os._exit(code)


class _LineReader:
    """Iterates request lines of an unbuffered socket file (a request is answered before the next is sent)."""

    def __init__(self, raw: object) -> None:
        self._raw = raw
        self._buffer = b""

    def __iter__(self) -> "_LineReader":
        return self

    def __next__(self) -> bytes:
        while b"\n" not in self._buffer:
            data = self._raw.read(65536)  # type: ignore[attr-defined]
            if not data:
                raise StopIteration
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"


def handle_request(control: socket.socket, line: bytes) -> None:
    """Answer one request line on C{control}."""
    words = line.split(b" ")
    ident = words[1] if len(words) > 1 else b"-"
    try:
        if len(words) != 5 or words[0] != b"OPEN" or not words[2].isdigit() or not words[3].isdigit():
            raise ValueError("bad request")
        uid, gid = int(words[2]), int(words[3])
        maildir = os.fsdecode(bytes.fromhex(words[4].decode("ascii")))
        if uid == 0:
            raise ValueError("refusing uid 0")
    except ValueError as e:
        control.sendall(b"ERR %s %s\n" % (ident, str(e).encode()))
        return
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except OSError as e:
        parent_end.close()
        child_end.close()
        control.sendall(b"ERR %s unable to fork: %s\n" % (ident, e.strerror.encode() if e.strerror else b"?"))
        return
    if pid == 0:
        control.close()
        parent_end.close()
        _run_child(child_end, uid, gid, maildir)
    child_end.close()
    try:
        control.sendmsg(
            [b"OK %s\n" % ident],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [parent_end.fileno()]))],
        )
    finally:
        parent_end.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=SPAWNER_FD)
    buffer = b""
    while True:
        try:
            data = control.recv(65536)
        except InterruptedError:
            continue
        except OSError:
            return 1
        if not data:
            return 0
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            try:
                handle_request(control, line)
            except OSError:
                return 1
        if len(buffer) > MAX_REQUEST:
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
