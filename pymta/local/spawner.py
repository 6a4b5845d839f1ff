# -*- test-case-name: tests.local.test_spawner -*-
"""
The local delivery spawner (qmail-lspawn's job): C{python -m
pymta.local.spawner ROOT}.

A small process without a reactor.  It reads requests from fd 0 and writes
reports to fd 1 (framing in L{pymta.local.wire}); fd 2 carries warnings for
the parent's log.  For each request it:

1. finds the user (L{pymta.local.getpw.find_user}: users/assign, cached and
   re-read when it changes, then the password database, then the alias
   user), as qmail-lspawn does before it starts qmail-local;
2. refuses uid 0 (C{Not allowed to perform deliveries as root.}); when the
   spawner itself is not root, defers a delivery that needs a uid other than
   its own (C{Not running as root, cannot deliver as uid N. (#4.3.0)});
3. opens the queued message (as root when started as root; only a regular
   file owned by the owner of C{ROOT/queue} is delivered, since the parent
   names the path) and hands the open descriptor (C{SCM_RIGHTS}) to a
   B{delivery child} of that uid/gid, with C{control/defaultdelivery} as
   the spawner reads it itself (L{pymta.local.defaultdelivery}; the
   request's copy is not trusted).

A delivery child is forked from the spawner, closes every descriptor of
the spawner except its own socket, calls C{setgroups([gid])}, C{setgid},
C{setuid} (in that order, checked afterwards) and only then runs
L{pymta.local.deliver.deliver_local}.  It serves one delivery at a time and
stays for further deliveries B{of the same uid and gid only}, so a burst of
mail for one user costs one fork instead of one per message; it is retired
after L{CHILD_IDLE} idle seconds or L{CHILD_DELIVERIES} deliveries, or to
make room for another user.  A child never changes uid again and never
serves another user.

Reports carry C{K}/C{Z}/C{D}, the child's output capped at L{OUTPUT_CAP}
bytes as qmail-lspawn does, and for C{K} the forward targets the parent
must queue.  Up to L{MAX_CHILDREN} children run at once; further requests
wait.  End of input means: finish the queued and running deliveries, then
exit 0.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import os
import selectors
import signal
import socket
import stat
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pymta.address import split_address
from pymta.fsutil import write_all
from pymta.local.assign import AssignCache, AssignError
from pymta.local.defaultdelivery import DefaultDelivery
from pymta.local.deliver import LocalDelivery, deliver_local
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import LocalUser, find_user
from pymta.local.wire import RecordReader, WireError, encode_record

__all__ = [
    "Spawner",
    "main",
    "drop_privileges",
    "cap_output",
    "OUTPUT_CAP",
    "MAX_CHILDREN",
    "CHILD_IDLE",
    "CHILD_DELIVERIES",
    "TOO_LONG",
    "ROOT_REFUSED",
]

OUTPUT_CAP = 3000
TOO_LONG = "\nError report too long, sorry.\n"
MAX_CHILDREN = 120
CHILD_IDLE = 2.0
CHILD_DELIVERIES = 500
MAX_LINE = 16 * 1024 * 1024
ROOT_REFUSED = "Not allowed to perform deliveries as root."


def cap_output(text: str) -> str:
    """qmail-lspawn's cap: at most L{OUTPUT_CAP} bytes, the tail replaced by a notice."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= OUTPUT_CAP:
        return text
    return data[: OUTPUT_CAP - len(TOO_LONG)].decode("utf-8", "ignore") + TOO_LONG


def drop_privileges(uid: int, gid: int) -> None:
    """setgroups, setgid, setuid in that order; raises L{DeliveryFailure} if anything is off."""
    if uid == 0:
        raise DeliveryFailure.temporary(ROOT_REFUSED)
    if os.getuid() == 0 or os.geteuid() == 0:
        try:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to switch to uid {uid} gid {gid}: {e.strerror}. (#4.3.0)") from None
        if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (uid, uid, gid, gid):
            raise DeliveryFailure.temporary(f"Unable to switch to uid {uid} gid {gid}. (#4.3.0)")
        return
    if uid != os.getuid():
        raise DeliveryFailure.temporary(f"Not running as root, cannot deliver as uid {uid}. (#4.3.0)")


def _report(slot: int, status: str, output: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "slot": slot,
        "status": status,
        "output": output,
        "did": None,
        "forwards": [],
        "newsender": "",
        "uid": None,
    }
    record.update(extra)
    return record


@dataclass
class _Job:
    """One accepted request waiting for, or running in, a delivery child."""

    slot: int
    message: str
    sender: str
    local: str
    domain: str
    user: LocalUser
    defaultdelivery: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.user.uid, self.user.gid)


@dataclass
class _Child:
    """A delivery child: one uid/gid, one job at a time."""

    key: tuple[int, int]
    pid: int
    sock: socket.socket
    job: _Job | None = None
    served: int = 0
    idle_since: float = 0.0
    data: bytearray = field(default_factory=bytearray)


class Spawner:
    """The spawner's state and loop; see the module docstring."""

    def __init__(
        self,
        root: str,
        infd: int = 0,
        outfd: int = 1,
        *,
        lock_timeout: float = 30.0,
        child_idle: float = CHILD_IDLE,
        child_deliveries: int = CHILD_DELIVERIES,
        max_children: int = MAX_CHILDREN,
    ) -> None:
        self.root = os.path.abspath(root)
        self.infd = infd
        self.outfd = outfd
        self.lock_timeout = lock_timeout
        self.child_idle = child_idle
        self.child_deliveries = child_deliveries
        self.max_children = max_children
        self.assign = AssignCache(self.root, warn=self.warn)
        self.default_delivery = DefaultDelivery(self.root)
        self.reader = RecordReader()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}  # by socket fd
        self.waiting: deque[_Job] = deque()
        self.unreaped: set[int] = set()
        self.eof = False
        self.parent = os.getppid()
        self.queue_owner = _queue_owner(self.root) if os.geteuid() == 0 else None

    # -- output ------------------------------------------------------------

    def warn(self, text: str) -> None:
        try:
            os.write(2, f"pymta-spawner: warning: {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    def send(self, record: dict[str, Any]) -> None:
        write_all(self.outfd, encode_record(record))

    # -- main loop ---------------------------------------------------------

    def run(self) -> int:
        self.send({"hello": 1, "pid": os.getpid(), "uid": os.getuid()})
        self.selector.register(self.infd, selectors.EVENT_READ, None)
        gc.freeze()  # keep the collector from touching (and copying) inherited pages in every child
        while not (self.eof and not self.waiting and not self._busy()):
            for key, _ in self.selector.select(self._timeout()):
                if key.data is None:
                    self._read_requests()
                else:
                    self._read_child(key.data)
            self._dispatch()
            self._retire_idle()
            self._reap()
        for child in list(self.children.values()):
            self._retire(child)
        self._reap(block=True)
        return 0

    def _busy(self) -> bool:
        return any(child.job is not None for child in self.children.values())

    def _timeout(self) -> float | None:
        timeouts = []
        if self.unreaped:
            timeouts.append(0.1)
        idle = [c.idle_since for c in self.children.values() if c.job is None]
        if idle:
            timeouts.append(max(0.0, min(idle) + self.child_idle - time.monotonic()))
        return min(timeouts) if timeouts else None

    def _read_requests(self) -> None:
        try:
            data = os.read(self.infd, 65536)
        except InterruptedError:
            return
        if not data:
            self.eof = True
            self.selector.unregister(self.infd)
            return
        try:
            records = self.reader.feed(data)
        except WireError as e:
            self.warn(f"protocol error from parent: {e}; no more requests accepted")
            self.eof = True
            self.selector.unregister(self.infd)
            return
        for record in records:
            self.accept(record)

    # -- one request -------------------------------------------------------

    def accept(self, request: dict[str, Any]) -> None:
        """Check a request and find its user; report at once or queue the job."""
        slot = request.get("slot")
        if not isinstance(slot, int):
            self.warn(f"request without a slot number ignored: {request!r:.200}")
            return
        fields = {}
        for name in ("message", "sender", "recipient", "defaultdelivery"):
            value = request.get(name)
            if not isinstance(value, str):
                self.send(_report(slot, "D", f"Internal error: request has no {name}. (#5.3.0)"))
                return
            fields[name] = value
        recipient = fields["recipient"]
        if any("\0" in v for v in fields.values()):
            self.send(_report(slot, "D", "Sorry, address contains a NUL byte. (#5.1.3)"))
            return
        if "@" not in recipient:
            self.send(_report(slot, "D", "Sorry, address must include host name. (#5.1.3)"))
            return
        local, domain = split_address(recipient)
        if not local:
            self.send(_report(slot, "K", "", did=[0, 0, 0]))
            return
        try:
            table = self.assign.table()
        except AssignError as e:
            self.send(_report(slot, "Z", f"Trouble reading users/assign: {e}. (#4.3.0)"))
            return
        try:
            user = find_user(self.root, local, table)
            if user.uid == 0:
                raise DeliveryFailure.temporary(ROOT_REFUSED)
            if os.getuid() != 0 and user.uid != os.getuid():
                raise DeliveryFailure.temporary(f"Not running as root, cannot deliver as uid {user.uid}. (#4.3.0)")
            # the spawner's own copy: the request's text comes from the mail uid
            defaultdelivery = self.default_delivery.current()
        except DeliveryFailure as failure:
            self.send(_report(slot, failure.status, failure.text))
            return
        self.waiting.append(_Job(slot, fields["message"], fields["sender"], local, domain, user, defaultdelivery))

    def _orphaned(self) -> bool:
        """The queue manager that sent the requests died (this process was handed to another parent)."""
        return self.eof and os.getppid() != self.parent

    def _dispatch(self) -> None:
        """Start every waiting job that has (or may fork) a free child of its uid."""
        if self.waiting and self._orphaned():
            # Its successor will deliver these again, and their message files may by then hold
            # other messages: none is started (running ones finish; nobody reads the reports).
            for job in self.waiting:
                self.send(_report(job.slot, "Z", "The queue manager went away before this delivery started. (#4.3.0)"))
            self.waiting.clear()
            return
        kept: deque[_Job] = deque()
        while self.waiting:
            job = self.waiting.popleft()
            try:
                child = self._free_child(job.key)
            except DeliveryFailure as failure:
                self.send(_report(job.slot, failure.status, failure.text, uid=job.user.uid))
                continue
            if child is None:
                kept.append(job)
                continue
            self._run(child, job)
        self.waiting = kept

    def _not_a_queue_file(self, fd: int) -> str | None:
        """
        Why the file opened (as root) for a delivery is no message of the queue,
        or None: it must be a regular file (a FIFO would block the spawner) and,
        when the spawner is root, owned by the queue's owner - the queue manager
        names the path, and root must not read any other file into a mailbox.
        """
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "Message file is not a regular file. (#4.3.0)"
        if os.geteuid() == 0 and st.st_uid != self.queue_owner:
            return "Message file is not owned by the queue's owner. (#4.3.0)"
        return None

    def _free_child(self, key: tuple[int, int]) -> _Child | None:
        for child in self.children.values():
            if child.key == key and child.job is None:
                return child
        if len(self.children) >= self.max_children:
            idle = [c for c in self.children.values() if c.job is None]
            if not idle:
                return None
            self._retire(min(idle, key=lambda c: c.idle_since))
        return self._fork(key)

    def _run(self, child: _Child, job: _Job) -> None:
        try:
            message_fd = os.open(job.message, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            self.send(_report(job.slot, "Z", f"Unable to open message: {e.strerror}. (#4.3.0)", uid=job.user.uid))
            return
        refusal = self._not_a_queue_file(message_fd)
        if refusal is not None:
            os.close(message_fd)
            self.send(_report(job.slot, "Z", refusal, uid=job.user.uid))
            return
        try:
            # a shared lock for as long as any copy of this descriptor is open (here and in the
            # child): the queue never reuses a message file someone still reads, and a file
            # being written (exclusively locked) is not delivered
            fcntl.flock(message_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            os.close(message_fd)
            self.send(_report(job.slot, "Z", f"Message file is busy: {e.strerror}. (#4.3.0)", uid=job.user.uid))
            return
        u = job.user
        payload = json.dumps(
            {
                "sender": job.sender,
                "local": job.local,
                "domain": job.domain,
                "user": [u.user, u.uid, u.gid, u.home, u.dash, u.ext, u.source],
                "defaultdelivery": job.defaultdelivery,
            },
            ensure_ascii=True,
        ).encode("ascii") + b"\n"
        try:
            child.sock.setblocking(True)
            sent = socket.send_fds(child.sock, [payload], [message_fd])
            if sent < len(payload):
                child.sock.sendall(payload[sent:])
            child.sock.setblocking(False)
        except OSError:
            # the child went away while idle: forget it, try the job again
            os.close(message_fd)
            self._retire(child)
            self.waiting.appendleft(job)
            return
        os.close(message_fd)
        child.job = job

    # -- children ----------------------------------------------------------

    def _fork(self, key: tuple[int, int]) -> _Child:
        try:
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to create a socket pair: {e.strerror}. (#4.3.0)") from None
        try:
            pid = os.fork()
        except OSError as e:
            parent_end.close()
            child_end.close()
            raise DeliveryFailure.temporary(f"Unable to fork: {e.strerror}. (#4.3.0)") from None
        if pid == 0:
            code = 1
            try:
                parent_end.close()
                self._become_child(child_end.fileno())
                code = _child_main(child_end, key, self.lock_timeout)
            finally:
                os._exit(code)
        child_end.close()
        parent_end.setblocking(False)
        child = _Child(key, pid, parent_end, idle_since=time.monotonic())
        self.children[parent_end.fileno()] = child
        self.selector.register(parent_end.fileno(), selectors.EVENT_READ, child)
        return child

    def _become_child(self, keep: int) -> None:
        """In a forked child: default signals, no descriptor of the spawner but C{keep}."""
        gc.disable()
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        try:
            self.selector.close()
        except OSError:
            pass
        for child in self.children.values():
            try:
                child.sock.close()
            except OSError:
                pass
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        if null > 2:
            os.close(null)
        for fd in (self.infd, self.outfd):
            if fd > 2 and fd != keep:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _read_child(self, child: _Child) -> None:
        try:
            data = child.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._child_gone(child)
            return
        child.data += data
        while True:
            end = child.data.find(b"\n")
            if end == -1:
                if len(child.data) > MAX_LINE:
                    self.warn(f"delivery child {child.pid} sent an over-long report; killing it")
                    self._kill(child)
                return
            line = bytes(child.data[:end])
            del child.data[: end + 1]
            self._finish(child, line)

    def _finish(self, child: _Child, line: bytes) -> None:
        job = child.job
        if job is None:
            self.warn(f"delivery child {child.pid} reported without a job; killing it")
            self._kill(child)
            return
        try:
            outcome = json.loads(line)
        except ValueError:
            outcome = None
        if not isinstance(outcome, dict) or not _valid_outcome(outcome):
            self.send(_report(job.slot, "Z", "Local delivery child sent a malformed report. (#4.3.0)", uid=job.user.uid))
            child.job = None
            self._kill(child)
            return
        letter = outcome["status"]
        self.send(
            _report(
                job.slot,
                letter,
                cap_output(outcome["output"]),
                did=outcome["did"] if letter == "K" else None,
                forwards=outcome["forwards"] if letter == "K" else [],
                newsender=outcome["newsender"],
                uid=job.user.uid,
            )
        )
        child.job = None
        child.served += 1
        child.idle_since = time.monotonic()
        if child.served >= self.child_deliveries:
            self._retire(child)

    def _child_gone(self, child: _Child) -> None:
        """The child's socket closed: it exited (or crashed)."""
        self._drop(child)
        job = child.job
        if job is None:
            self.unreaped.add(child.pid)
            return
        while True:
            try:
                _, status = os.waitpid(child.pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                status = 0
                break
        if os.WIFSIGNALED(status):
            text = f"Local delivery child crashed (signal {os.WTERMSIG(status)}). (#4.3.0)"
        else:
            text = f"Local delivery child exited without a result (status {os.waitstatus_to_exitcode(status)}). (#4.3.0)"
        self.send(_report(job.slot, "Z", text, uid=job.user.uid))

    def _drop(self, child: _Child) -> None:
        fd = child.sock.fileno()
        if fd in self.children:
            del self.children[fd]
            self.selector.unregister(fd)
        child.sock.close()

    def _retire(self, child: _Child) -> None:
        """Close an idle child's socket: it exits at end of input."""
        self._drop(child)
        self.unreaped.add(child.pid)

    def _kill(self, child: _Child) -> None:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except OSError:
            pass
        self._retire(child)

    def _retire_idle(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.job is None and now - child.idle_since >= self.child_idle:
                self._retire(child)

    def _reap(self, block: bool = False) -> None:
        for pid in list(self.unreaped):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            except InterruptedError:
                continue
            if done:
                self.unreaped.discard(pid)


def _queue_owner(root: str) -> int | None:
    """The uid owning C{root}/queue (whose files are the messages), or None when it cannot be found."""
    try:
        return os.stat(os.path.join(root, "queue")).st_uid
    except OSError:
        return None


def _valid_outcome(outcome: dict[str, Any]) -> bool:
    if outcome.get("status") not in ("K", "Z", "D"):
        return False
    if not isinstance(outcome.get("output"), str) or not isinstance(outcome.get("newsender"), str):
        return False
    forwards = outcome.get("forwards")
    if not isinstance(forwards, list) or not all(isinstance(f, str) for f in forwards):
        return False
    did = outcome.get("did")
    if outcome["status"] == "K":
        return isinstance(did, list) and len(did) == 3 and all(isinstance(n, int) for n in did)
    return True


# -- the delivery child ------------------------------------------------------


def _receive(sock: socket.socket, pending: bytearray) -> tuple[bytes, list[int]] | None:
    """The next request line and the descriptors that came with it; None at end of input."""
    fds: list[int] = []
    while b"\n" not in pending:
        data, received, _, _ = socket.recv_fds(sock, 65536, 4)
        fds.extend(received)
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        pending += data
    end = pending.index(b"\n")
    line = bytes(pending[:end])
    del pending[: end + 1]
    return line, fds


def _child_main(sock: socket.socket, key: tuple[int, int], lock_timeout: float) -> int:
    """A delivery child: become uid/gid C{key}, then deliver each request that arrives."""
    uid, gid = key
    refusal: DeliveryFailure | None = None
    try:
        drop_privileges(uid, gid)
        os.umask(0o077)
    except DeliveryFailure as failure:
        refusal = failure
    pending = bytearray()
    while True:
        try:
            received = _receive(sock, pending)
        except OSError:
            return 111
        if received is None:
            return 0
        line, fds = received
        try:
            outcome = _deliver_request(line, fds, refusal, lock_timeout)
        except Exception as e:  # never run on into anything else: report and stop
            outcome = {"status": "Z", "output": f"Internal error in local delivery: {type(e).__name__}: {e}. (#4.3.0)",
                       "did": None, "forwards": [], "newsender": ""}
        finally:
            for fd in fds:
                os.close(fd)
        sock.sendall(json.dumps(outcome, ensure_ascii=True).encode("ascii") + b"\n")


def _deliver_request(line: bytes, fds: list[int], refusal: DeliveryFailure | None, lock_timeout: float) -> dict[str, Any]:
    if refusal is not None:
        return {"status": refusal.status, "output": refusal.text, "did": None, "forwards": [], "newsender": ""}
    if len(fds) != 1:
        raise ValueError(f"expected one message descriptor, got {len(fds)}")
    request = json.loads(line)
    name, uid, gid, home, dash, ext, source = request["user"]
    user = LocalUser(name, uid, gid, home, dash, ext, source)
    delivery = LocalDelivery(request["sender"], request["local"], request["domain"], user, request["defaultdelivery"])
    outcome = deliver_local(delivery, fds[0], lock_timeout=lock_timeout)
    return {
        "status": outcome.status,
        "output": outcome.output,
        "did": list(outcome.did) if outcome.did is not None else None,
        "forwards": outcome.forwards,
        "newsender": outcome.newsender,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m pymta.local.spawner ROOT\n")
        return 100
    # The parent's terminal signals are not for us: end of input stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.umask(0o077)
    try:
        return Spawner(args[0]).run()
    except OSError as e:
        if e.errno == errno.EPIPE:
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main())
