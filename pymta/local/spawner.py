# -*- test-case-name: tests.local.test_spawner -*-
"""
The local delivery spawner (qmail-lspawn's job): C{python -m
pymta.local.spawner ROOT}.

A small process without a reactor.  It reads requests from fd 0 and writes
reports to fd 1 (framing in L{pymta.local.wire}); fd 2 carries warnings for
the parent's log.  Per request it opens the queued message (as root when
started as root), forks, and the child:

1. closes every descriptor of the spawner (the pipes to the parent, other
   children's pipes) except its message and its own result pipe;
2. finds the user (L{pymta.local.getpw.find_user}, users/assign cached in the
   spawner and inherited through the fork) and writes the uid it chose to the
   result pipe while still privileged;
3. refuses uid 0; as root calls C{setgroups([gid])}, C{setgid(gid)},
   C{setuid(uid)} in that order and checks the result; not as root, defers
   any delivery that needs a uid other than its own;
4. runs L{pymta.local.deliver.deliver_local} and writes the outcome.

The spawner reaps the child and reports C{K}/C{Z}/C{D}, the child's output
capped at L{OUTPUT_CAP} bytes as qmail-lspawn does.  Up to
L{MAX_CHILDREN} deliveries run at once; more requests wait.  End of input
means: finish the running deliveries, then exit 0.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import selectors
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pymta.address import split_address
from pymta.local.assign import AssignCache, AssignError
from pymta.local.deliver import LocalDelivery, deliver_local
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import find_user
from pymta.local.wire import RecordReader, WireError, encode_record

__all__ = ["Spawner", "main", "OUTPUT_CAP", "MAX_CHILDREN", "TOO_LONG"]

OUTPUT_CAP = 3000
TOO_LONG = "\nError report too long, sorry.\n"
MAX_CHILDREN = 120
MAX_RESULT = 8 * 1024 * 1024
ROOT_REFUSED = "Not allowed to perform deliveries as root."


def cap_output(text: str) -> str:
    """qmail-lspawn's cap: at most L{OUTPUT_CAP} bytes, the tail replaced by a notice."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= OUTPUT_CAP:
        return text
    return data[: OUTPUT_CAP - len(TOO_LONG)].decode("utf-8", "ignore") + TOO_LONG


@dataclass
class _Child:
    slot: int
    pid: int
    fd: int
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False
    uid: int | None = None
    reported: bool = False


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


class Spawner:
    """The spawner's state and loop; see the module docstring."""

    def __init__(self, root: str, infd: int = 0, outfd: int = 1, *, lock_timeout: float = 30.0) -> None:
        self.root = os.path.abspath(root)
        self.infd = infd
        self.outfd = outfd
        self.lock_timeout = lock_timeout
        self.assign = AssignCache(self.root, warn=self.warn)
        self.reader = RecordReader()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}
        self.waiting: deque[dict[str, Any]] = deque()
        self.unreaped: set[int] = set()
        self.eof = False

    # -- output ------------------------------------------------------------

    def warn(self, text: str) -> None:
        try:
            os.write(2, f"pymta-spawner: warning: {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    def send(self, record: dict[str, Any]) -> None:
        data = memoryview(encode_record(record))
        while data:
            written = os.write(self.outfd, data)
            data = data[written:]

    # -- main loop ---------------------------------------------------------

    def run(self) -> int:
        self.send({"hello": 1, "pid": os.getpid(), "uid": os.getuid()})
        self.selector.register(self.infd, selectors.EVENT_READ, None)
        gc.freeze()  # keep the collector from touching (and copying) inherited pages in every child
        while not (self.eof and not self.children and not self.waiting):
            for key, _ in self.selector.select(0.1 if self.unreaped else None):
                if key.data is None:
                    self._read_requests()
                else:
                    self._read_child(key.data)
            self._start_waiting()
            self.reap()
        self.reap(block=True)
        return 0

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
        self.waiting.extend(records)

    def _start_waiting(self) -> None:
        while self.waiting and len(self.children) < MAX_CHILDREN:
            self.start(self.waiting.popleft())

    # -- one request -------------------------------------------------------

    def start(self, request: dict[str, Any]) -> None:
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
            message_fd = os.open(fields["message"], os.O_RDONLY | os.O_NOCTTY)
        except OSError as e:
            self.send(_report(slot, "Z", f"Unable to open message: {e.strerror}. (#4.3.0)"))
            return
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_end)
            os.close(write_end)
            os.close(message_fd)
            self.send(_report(slot, "Z", f"Unable to fork: {e.strerror}. (#4.3.0)"))
            return
        if pid == 0:
            code = 1
            try:
                self._become_child(message_fd, write_end)
                code = _child_main(
                    self.root, table, local, domain, fields, message_fd, write_end, self.lock_timeout
                )
            finally:
                os._exit(code)
        os.close(write_end)
        os.close(message_fd)
        child = _Child(slot, pid, read_end)
        self.children[read_end] = child
        self.selector.register(read_end, selectors.EVENT_READ, child)

    def _become_child(self, message_fd: int, result_fd: int) -> None:
        """In the forked child: drop every descriptor of the spawner."""
        gc.disable()
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        try:
            self.selector.close()
        except OSError:
            pass
        for fd in list(self.children):
            try:
                os.close(fd)
            except OSError:
                pass
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        if null > 2:
            os.close(null)
        for fd in (self.infd, self.outfd):
            if fd > 2 and fd not in (message_fd, result_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _read_child(self, child: _Child) -> None:
        try:
            data = os.read(child.fd, 65536)
        except InterruptedError:
            return
        if data:
            if len(child.data) + len(data) > MAX_RESULT:
                child.overflow = True
                child.data.clear()
            elif not child.overflow:
                child.data += data
                self._parse_child(child)
            return
        self.selector.unregister(child.fd)
        os.close(child.fd)
        del self.children[child.fd]
        if child.reported:
            self.unreaped.add(child.pid)  # reaped without blocking by the main loop
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
        self.send(_report(child.slot, "Z", text, uid=child.uid))

    def _parse_child(self, child: _Child) -> None:
        """Act on complete lines from a child: its uid (written while privileged), then its outcome."""
        while not child.reported:
            end = child.data.find(b"\n")
            if end == -1:
                return
            line = bytes(child.data[:end])
            del child.data[: end + 1]
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                child.overflow = True  # garbage: treat the child as crashed when it exits
                return
            if child.uid is None and "status" not in record:
                uid = record.get("uid")
                child.uid = uid if isinstance(uid, int) else None
                continue
            if not _valid_outcome(record):
                child.overflow = True
                return
            letter = record["status"]
            self.send(
                _report(
                    child.slot,
                    letter,
                    cap_output(record["output"]),
                    did=record["did"] if letter == "K" else None,
                    forwards=record["forwards"] if letter == "K" else [],
                    newsender=record["newsender"],
                    uid=child.uid,
                )
            )
            child.reported = True

    def reap(self, block: bool = False) -> None:
        """Collect exited children that already reported."""
        for pid in list(self.unreaped):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            except InterruptedError:
                continue
            if done:
                self.unreaped.discard(pid)


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


def _write_line(fd: int, record: dict[str, Any]) -> None:
    data = memoryview(json.dumps(record, ensure_ascii=True).encode("ascii") + b"\n")
    while data:
        data = data[os.write(fd, data) :]


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


def _child_main(
    root: str,
    table: Any,
    local: str,
    domain: str,
    fields: dict[str, str],
    message_fd: int,
    result_fd: int,
    lock_timeout: float,
) -> int:
    """The delivery child: find the user, become him, deliver, write the outcome."""
    try:
        try:
            user = find_user(root, local, table)
        except DeliveryFailure as failure:
            _write_line(result_fd, {"status": failure.status, "output": failure.text, "did": None, "forwards": [], "newsender": ""})
            return 0
        _write_line(result_fd, {"uid": user.uid})
        try:
            drop_privileges(user.uid, user.gid)
        except DeliveryFailure as failure:
            _write_line(result_fd, {"status": failure.status, "output": failure.text, "did": None, "forwards": [], "newsender": ""})
            return 0
        os.umask(0o077)
        request = LocalDelivery(fields["sender"], local, domain, user, fields["defaultdelivery"])
        outcome = deliver_local(request, message_fd, lock_timeout=lock_timeout)
        _write_line(
            result_fd,
            {
                "status": outcome.status,
                "output": outcome.output,
                "did": list(outcome.did) if outcome.did is not None else None,
                "forwards": outcome.forwards,
                "newsender": outcome.newsender,
            },
        )
        return 0
    except BaseException as e:  # the child must never run on into the spawner's loop
        try:
            _write_line(
                result_fd,
                {"status": "Z", "output": f"Internal error in local delivery: {type(e).__name__}: {e}. (#4.3.0)",
                 "did": None, "forwards": [], "newsender": ""},
            )
        except OSError:
            pass
        return 111


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
