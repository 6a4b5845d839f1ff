# -*- test-case-name: tests.local.test_spawner -*-
"""
The local spawner's delivery children (L{pymta.local.deliverychild}): at
most one job each at a time, each child one uid and gid for its whole life.

For a job the pool finds an idle child of the job's uid and gid, or forks
one (L{pymta.privsep.fork_child}; when L{MAX_CHILDREN} live, the longest
idle child of another uid is retired to make room, and with none idle the
job waits).  It opens the queued message itself - as root when the
spawner is root - and hands the open descriptor to the child
(C{SCM_RIGHTS}): only a regular file, owned by the owner of C{ROOT/queue}
when root, under a shared lock (a message still being written is
exclusively locked, and is not delivered).

A child is retired (its socket closed: it exits at end of input) after
L{CHILD_IDLE} idle seconds or L{CHILD_DELIVERIES} deliveries; retired
children are reaped without blocking (L{pymta.privsep.reap_ended}).  Time
comes from the clock the pool is given, so tests drive idle retirement.
"""

from __future__ import annotations

import fcntl
import gc
import os
import selectors
import signal
import socket
import stat
from dataclasses import dataclass, field
from typing import Callable, cast

from pymta.local.childrecords import MAX_LINE, encode_delivery, parse_outcome
from pymta.local.deliver import LocalDelivery
from pymta.local.deliverychild import child_main
from pymta.local.errors import DeliveryFailure, printed
from pymta.local.spawnrecords import DeliveryReport, RecordError, Status
from pymta.privsep import fork_child, reap_ended, wait_child

__all__ = ["ChildPool", "Job", "MAX_CHILDREN", "CHILD_IDLE", "CHILD_DELIVERIES"]

MAX_CHILDREN = 120
CHILD_IDLE = 2.0
CHILD_DELIVERIES = 500


@dataclass(frozen=True)
class Job:
    """One accepted request: deliver the queued file C{message} as C{delivery} says, report as C{slot}."""

    slot: int
    message: str
    delivery: LocalDelivery

    @property
    def key(self) -> tuple[int, int]:
        return (self.delivery.user.uid, self.delivery.user.gid)

    def report(self, status: str, text: str) -> DeliveryReport:
        """A report for this job without a delivery (C{status} Z or D, a L{DeliveryFailure}'s), C{text} with its newline."""
        return DeliveryReport.report(self.slot, cast(Status, status), printed(text), uid=self.delivery.user.uid)


@dataclass
class Child:
    """A delivery child: one uid/gid, one job at a time."""

    key: tuple[int, int]
    pid: int
    sock: socket.socket
    job: Job | None = None
    served: int = 0
    idle_since: float = 0.0
    data: bytearray = field(default_factory=bytearray)


class ChildPool:
    """The delivery children of one spawner (see the module docstring)."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        report: Callable[[DeliveryReport], None],
        warn: Callable[[str], None],
        *,
        queue_owner: int | None,
        lock_timeout: float,
        child_idle: float = CHILD_IDLE,
        child_deliveries: int = CHILD_DELIVERIES,
        max_children: int = MAX_CHILDREN,
        clock: Callable[[], float],
        close_in_child: tuple[int, ...] = (),
    ) -> None:
        """C{selector} is the spawner's (children's sockets join it); C{close_in_child} its descriptors a child must not keep."""
        self.selector = selector
        self.report = report
        self.warn = warn
        self.queue_owner = queue_owner
        self.lock_timeout = lock_timeout
        self.child_idle = child_idle
        self.child_deliveries = child_deliveries
        self.max_children = max_children
        self.clock = clock
        self.close_in_child = close_in_child
        self.children: dict[int, Child] = {}  # by socket fd
        self.unreaped: set[int] = set()

    # -- jobs ----------------------------------------------------------------

    def start(self, job: Job) -> bool:
        """Run C{job} in a child of its uid (or report why not): True; False when it must wait for a child."""
        while True:
            try:
                child = self._free_child(job.key)
            except DeliveryFailure as failure:
                self.report(job.report(failure.status, failure.report))
                return True
            if child is None:
                return False
            message_fd = self._open_message(job)
            if message_fd is None:
                return True
            if self._hand_over(child, job, message_fd):
                return True
            # the child went away while idle: forget it, try the job again

    def busy(self) -> bool:
        return any(child.job is not None for child in self.children.values())

    def timeout(self) -> float | None:
        """Seconds until the pool has something to do without input (retire, reap), or None."""
        timeouts = []
        if self.unreaped:
            timeouts.append(0.1)
        idle = [c.idle_since for c in self.children.values() if c.job is None]
        if idle:
            timeouts.append(max(0.0, min(idle) + self.child_idle - self.clock()))
        return min(timeouts) if timeouts else None

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

    def _open_message(self, job: Job) -> int | None:
        """The queued message, open and share-locked; None when reported as a deferral."""
        try:
            message_fd = os.open(job.message, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            self.report(job.report("Z", f"Unable to open message: {e.strerror}. (#4.3.0)"))
            return None
        refusal = self._not_a_queue_file(message_fd)
        if refusal is not None:
            os.close(message_fd)
            self.report(job.report("Z", refusal))
            return None
        try:
            # a shared lock for as long as any copy of this descriptor is open (here and in the
            # child): the queue never reuses a message file someone still reads, and a file
            # being written (exclusively locked) is not delivered
            fcntl.flock(message_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            os.close(message_fd)
            self.report(job.report("Z", f"Message file is busy: {e.strerror}. (#4.3.0)"))
            return None
        return message_fd

    def _hand_over(self, child: Child, job: Job, message_fd: int) -> bool:
        """Send the job and the message descriptor to C{child} (closes it here); False if the child is gone."""
        payload = encode_delivery(job.delivery)
        try:
            child.sock.setblocking(True)
            sent = socket.send_fds(child.sock, [payload], [message_fd])
            if sent < len(payload):
                child.sock.sendall(payload[sent:])
            child.sock.setblocking(False)
        except OSError:
            self._retire(child)
            return False
        finally:
            os.close(message_fd)
        child.job = job
        return True

    # -- children --------------------------------------------------------------

    def _free_child(self, key: tuple[int, int]) -> Child | None:
        for child in self.children.values():
            if child.key == key and child.job is None:
                return child
        if len(self.children) >= self.max_children:
            idle = [c for c in self.children.values() if c.job is None]
            if not idle:
                return None
            self._retire(min(idle, key=lambda c: c.idle_since))
        return self._fork(key)

    def _fork(self, key: tuple[int, int]) -> Child:
        try:
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to create a socket pair: {e.strerror}. (#4.3.0)") from None

        def run_child() -> int:
            parent_end.close()
            self._become_child(child_end.fileno())
            return child_main(child_end, key[0], key[1], self.lock_timeout)

        try:
            pid = fork_child(run_child)
        except OSError as e:
            parent_end.close()
            child_end.close()
            raise DeliveryFailure.temporary(f"Unable to fork: {e.strerror}. (#4.3.0)") from None
        child_end.close()
        parent_end.setblocking(False)
        child = Child(key, pid, parent_end, idle_since=self.clock())
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
        for fd in self.close_in_child:
            if fd > 2 and fd != keep:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def read(self, child: Child) -> None:
        """The child's socket is readable: its report, or its end."""
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

    def _finish(self, child: Child, line: bytes) -> None:
        job = child.job
        if job is None:
            self.warn(f"delivery child {child.pid} reported without a job; killing it")
            self._kill(child)
            return
        try:
            outcome = parse_outcome(line)
        except RecordError:
            self.report(job.report("Z", "Local delivery child sent a malformed report. (#4.3.0)"))
            child.job = None
            self._kill(child)
            return
        self.report(
            DeliveryReport.report(
                job.slot,
                cast(Status, outcome.status),  # parse_outcome checked it
                outcome.output,
                did=outcome.did,
                forwards=tuple(outcome.forwards),
                newsender=outcome.newsender,
                uid=job.delivery.user.uid,
            )
        )
        child.job = None
        child.served += 1
        child.idle_since = self.clock()
        if child.served >= self.child_deliveries:
            self._retire(child)

    def _child_gone(self, child: Child) -> None:
        """The child's socket closed: it exited (or crashed)."""
        self._drop(child)
        job = child.job
        if job is None:
            self.unreaped.add(child.pid)
            return
        status = wait_child(child.pid)
        assert status is not None
        if os.WIFSIGNALED(status):
            text = f"Local delivery child crashed (signal {os.WTERMSIG(status)}). (#4.3.0)"
        else:
            text = f"Local delivery child exited without a result (status {os.waitstatus_to_exitcode(status)}). (#4.3.0)"
        self.report(job.report("Z", text))

    def _drop(self, child: Child) -> None:
        fd = child.sock.fileno()
        if fd in self.children:
            del self.children[fd]
            self.selector.unregister(fd)
        child.sock.close()

    def _retire(self, child: Child) -> None:
        """Close an idle child's socket: it exits at end of input."""
        self._drop(child)
        self.unreaped.add(child.pid)

    def _kill(self, child: Child) -> None:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except OSError:
            pass
        self._retire(child)

    def retire_idle(self) -> None:
        now = self.clock()
        for child in list(self.children.values()):
            if child.job is None and now - child.idle_since >= self.child_idle:
                self._retire(child)

    def reap(self) -> None:
        reap_ended(self.unreaped)

    def close(self) -> None:
        """Retire every child and wait until all have ended."""
        for child in list(self.children.values()):
            self._retire(child)
        for pid in list(self.unreaped):
            wait_child(pid)
        self.unreaped.clear()
