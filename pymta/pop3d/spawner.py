# -*- test-case-name: tests.pop3d.test_spawner -*-
"""
The root mailbox spawner: C{python -m pymta.pop3d.spawner --passwd FILE}
or C{python -m pymta.pop3d.spawner --checkpassword PROGRAM [ARG...]}, with
fd 3 a UNIX stream socket to pop3d.

pop3d starts it in C{privilegedStartService}, while still root, so that
after twistd drops pop3d to its own uid (C{--uid}) system users can still be
served by children running as themselves.  It is small and has no reactor:
it reads requests from fd 3 only (nobody else holds the other end), and per
request forks a mailbox child (the already imported
L{pymta.pop3d.mailboxchild}: about a millisecond instead of a new
interpreter).  The child talks to pop3d over a fresh socketpair whose other
end travels back to pop3d with SCM_RIGHTS.

pop3d runs as the mail uid and is not trusted: a request names a login,
never a uid or a path (L{pymta.pop3d.spawnrequest}; its docstring has the
wire format).  The child, still root, checks that login itself against its
own users/passwd or checkpassword program and takes uid, gid and home from
that answer (L{pymta.pop3d.rootauth}: uid 0, gid 0 and a home not owned by
the uid refused), becomes the user (L{pymta.privsep.become}), and only
then resolves C{home/Maildir} (refused if a symlink leads out of the home).
A refused child answers pop3d's first request with C{DENIED <text>} and
exits.  Checking in the child keeps a slow password hash from holding up
other logins.

Request::  C{OPEN <id> PASS <hex user> <hex password>\\n}
           C{OPEN <id> APOP <hex user> <hex digest> <hex timestamp>\\n}
Reply::    C{OK <id>\\n} with one descriptor attached, or C{ERR <id> <text>\\n}

A malformed or overlong request gets C{ERR}, and so does a request while
L{MAX_CHILDREN} children live (finished ones are reaped before each fork and
every few seconds); EOF on fd 3 (pop3d gone) ends the spawner.

The loop (L{Spawner.run}) has the shape of the local delivery spawner's
(L{pymta.local.spawner}), and forks, reaps and drops privileges the same
way (L{pymta.privsep}, whose docstring says where the two differ).
"""

from __future__ import annotations

import array
import os
import re
import selectors
import signal
import socket
import sys

from pymta.pop3d.mailboxchild import serve
from pymta.pop3d.maildir import MaildirStore
from pymta.pop3d.rootauth import (
    AccountSource,
    CheckpasswordSource,
    LoginDenied,
    LoginUnavailable,
    PasswdFileSource,
    check_home,
    confined_maildir,
)
from pymta.pop3d.spawnrequest import MAX_REQUEST, LoginRequest, parse_request
from pymta.privsep import become, fork_child, reap_ended

__all__ = ["Spawner", "main", "handle_request", "source_from_argv", "SPAWNER_FD"]

SPAWNER_FD = 3
MAX_CHILDREN = 512  # live mailbox children (sessions and logins being checked)
REAP_INTERVAL = 5.0
_IDENT = re.compile(rb"\A[0-9]{1,20}\Z")


def _open_as_user(source: AccountSource, login: LoginRequest) -> MaildirStore:
    """As root: check the login, then become its user; the confined Maildir (L{LoginDenied} if refused)."""
    account = source.authenticate(login)
    home = check_home(account)
    assert account.uid is not None and account.gid is not None
    become(account.uid, account.gid)
    os.umask(0o077)
    return MaildirStore(confined_maildir(home))


def _child_main(sock: socket.socket, source: AccountSource, login: LoginRequest) -> int:
    """The forked mailbox child: check, become the user, serve the mailbox on C{sock}; the exit status."""
    try:
        os.dup2(sock.fileno(), 0)
        os.dup2(sock.fileno(), 1)
        sock.close()
        with os.fdopen(0, "rb", buffering=0) as raw_in, os.fdopen(1, "wb") as out:
            try:
                store = _open_as_user(source, login)
            except (LoginDenied, LoginUnavailable) as e:
                next(_LineReader(raw_in), None)  # answer pop3d's first request, then go
                out.write(b"DENIED %s\n" % str(e).encode("utf-8", "replace").replace(b"\n", b" "))
                out.flush()
                sys.stderr.write(f"mailbox child: {login.user!r}: {e}\n")
                return 1
            serve(store, _LineReader(raw_in), out)
    except BrokenPipeError:
        pass
    except BaseException as e:  # said here, in the words pop3d's log has always had
        try:
            sys.stderr.write(f"mailbox child: {e}\n")
        except Exception:
            pass
        return 1
    return 0


class _LineReader:
    """Iterates request lines of an unbuffered socket file (a request is answered before the next is sent)."""

    def __init__(self, raw: object) -> None:
        self._raw = raw
        self._buffer = b""

    def __iter__(self) -> "_LineReader":
        return self

    def __next__(self) -> bytes:
        while b"\n" not in self._buffer:
            data = self._raw.read(65536)  # type: ignore[attr-defined]  # an unbuffered FileIO
            if not data:
                raise StopIteration
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"


def handle_request(
    control: socket.socket, line: bytes, source: AccountSource, children: set[int] | None = None
) -> None:
    """
    Answer one request line on C{control} (a bad request gets C{ERR}, never
    an exception); C{children} holds the live children's pids, at most
    L{MAX_CHILDREN}.
    """
    words = line.split(b" ", 2)
    ident = words[1] if len(words) > 1 and _IDENT.match(words[1]) else b"-"
    try:
        ident, login = parse_request(line)
    except ValueError as e:
        control.sendall(b"ERR %s %s\n" % (ident, str(e).encode()))
        return
    if children is not None:
        reap_ended(children)
        if len(children) >= MAX_CHILDREN:
            control.sendall(b"ERR %s too many mailbox sessions\n" % ident)
            return
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def child() -> int:
        control.close()
        parent_end.close()
        return _child_main(child_end, source, login)

    try:
        pid = fork_child(child)
    except OSError as e:
        parent_end.close()
        child_end.close()
        control.sendall(b"ERR %s unable to fork: %s\n" % (ident, e.strerror.encode() if e.strerror else b"?"))
        return
    if children is not None:
        children.add(pid)
    child_end.close()
    try:
        control.sendmsg(
            [b"OK %s\n" % ident],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [parent_end.fileno()]))],
        )
    finally:
        parent_end.close()


class Spawner:
    """The spawner's state and loop: requests from C{control}, one forked child per login."""

    def __init__(self, control: socket.socket, source: AccountSource) -> None:
        self.control = control
        self.source = source
        self.children: set[int] = set()
        self.selector = selectors.DefaultSelector()
        self.buffer = b""
        self.discarding = False  # inside an overlong line: drop it up to its newline
        self.eof = False
        self.status = 0

    def run(self) -> int:
        self.selector.register(self.control, selectors.EVENT_READ, None)
        while not self.eof:
            try:
                events = self.selector.select(REAP_INTERVAL)
            except InterruptedError:
                continue
            for _key, _ in events:
                self._read_requests()
            reap_ended(self.children)
        return self.status

    def _read_requests(self) -> None:
        try:
            data = self.control.recv(65536)
        except InterruptedError:
            return
        except OSError:
            self._end(1)
            return
        if not data:
            self._end(0)
            return
        self.buffer += data
        try:
            while b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                if self.discarding:
                    self.discarding = False
                    continue
                handle_request(self.control, line, self.source, self.children)
            if len(self.buffer) > MAX_REQUEST:
                if not self.discarding:
                    self.control.sendall(b"ERR - request too long\n")
                self.discarding, self.buffer = True, b""
        except OSError:
            self._end(1)

    def _end(self, status: int) -> None:
        self.eof = True
        self.status = status


def source_from_argv(argv: list[str]) -> AccountSource:
    """C{--passwd FILE} or C{--checkpassword PROGRAM [ARG...]}; L{ValueError} otherwise."""
    if len(argv) == 2 and argv[0] == "--passwd" and os.path.isabs(argv[1]):
        return PasswdFileSource(argv[1])
    if len(argv) >= 2 and argv[0] == "--checkpassword":
        return CheckpasswordSource(argv[1:])
    raise ValueError("usage: python -m pymta.pop3d.spawner --passwd FILE | --checkpassword PROGRAM [ARG...]")


def main(argv: list[str]) -> int:
    try:
        source = source_from_argv(argv)
    except ValueError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return Spawner(socket.socket(fileno=SPAWNER_FD), source).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
