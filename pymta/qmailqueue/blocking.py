# -*- test-case-name: tests.qmailqueue.test_blocking -*-
"""
C{QMAILQUEUE} for C{pymta inject} (and C{pymta sendmail}, which goes
through it): the program runs as qmail's C{qmail_open} runs it, blocking
in this one-message command.  A child process changes into the root,
puts the message pipe on descriptor 0, the envelope pipe on 1 and a
reply pipe on 6, and executes the program without arguments; when that
fails it exits 120, qmail's C{unable to exec qq}.  The message is
written, then the envelope, and the program's end is read as
L{pymta.qmailqueue.outcome} says.  The whole run is bounded by the
program's timeout, after which the program is killed (C{qq timeout}).
It runs as the caller: whoever runs C{pymta inject} chose the program.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import time
from typing import IO, Callable, Sequence

from pymta.interfaces import QueueReceipt
from pymta.qmailqueue.outcome import CUSTOM_REPLY_BYTES, program_failure
from pymta.qmailqueue.program import QmailQueueProgram
from pymta.queue.envelope import encode_qq_envelope
from pymta.queue.errors import EXIT_TIMEOUT, QueueFailure

__all__ = ["run_program", "program_enqueue"]

_CHUNK = 65536
#: descriptors of ours from here on, clear of 0, 1 and 6 that the child's are moved to
_LOW = 10


class _TimedOut(Exception):
    pass


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _LOW)
    os.close(fd)
    return moved


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    return _high(r), _high(w)


def _exec_child(program: QmailQueueProgram, message: int, envelope: int, reply: int) -> None:
    """In the child: never returns."""
    try:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it; the program expects the default
        os.chdir(program.cwd)
        os.dup2(message, 0)
        os.dup2(envelope, 1)
        os.dup2(reply, 6)
        os.execve(program.path, [program.path], program.env)
    finally:
        os._exit(120)


def _write_all(fd: int, data: bytes, deadline: float) -> bool:
    """Write C{data}; False when the program closed its end first."""
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
            raise _TimedOut()
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return False
    return True


def _feed(fd: int, message: bytes | IO[bytes], deadline: float) -> bool:
    if isinstance(message, bytes):
        return _write_all(fd, message, deadline)
    while True:
        chunk = message.read(_CHUNK)
        if not chunk:
            return True
        if not _write_all(fd, chunk, deadline):
            return False


def _wait(pid: int, deadline: float) -> int:
    """The child's wait status, or L{_TimedOut} at C{deadline}."""
    pidfd = os.pidfd_open(pid)
    try:
        remaining = max(0.0, deadline - time.monotonic())
        if not select.select([pidfd], [], [], remaining)[0]:
            raise _TimedOut()
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def run_program(program: QmailQueueProgram, message: bytes | IO[bytes], sender: str,
                recipients: Sequence[str]) -> QueueReceipt:
    """Give the message to C{program}: its receipt (C{qp}: its pid) or its L{QueueFailure}."""
    envelope = encode_qq_envelope(sender, recipients)
    deadline = time.monotonic() + program.timeout
    message_r, message_w = _pipe()
    envelope_r, envelope_w = _pipe()
    reply_r, reply_w = _pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _exec_child(program, message_r, envelope_r, reply_w)
    for fd in (message_r, envelope_r, reply_w):
        os.close(fd)
    os.set_blocking(message_w, False)
    os.set_blocking(envelope_w, False)
    complete = False
    try:
        try:
            complete = _feed(message_w, message, deadline)
            os.close(message_w)
            message_w = -1
            complete = complete and _write_all(envelope_w, envelope, deadline)
            os.close(envelope_w)
            envelope_w = -1
            status = _wait(pid, deadline)
        except _TimedOut:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise QueueFailure(EXIT_TIMEOUT, f"QMAILQUEUE program ran over {program.timeout:g} seconds") from None
        os.set_blocking(reply_r, False)
        try:
            reply = os.read(reply_r, CUSTOM_REPLY_BYTES)
        except BlockingIOError:
            reply = b""
    finally:
        for fd in (message_w, envelope_w, reply_r):
            if fd >= 0:
                os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    failure = program_failure(code if code >= 0 else None, -code if code < 0 else None, reply, complete)
    if failure is not None:
        raise failure
    return QueueReceipt(0, pid)


def program_enqueue(program: QmailQueueProgram) -> Callable[[str, bytes | IO[bytes], str, Sequence[str]], QueueReceipt]:
    """An enqueue function (C{root, message, sender, recipients}) that runs C{program} instead of the queue."""

    def enqueue(root: str, message: bytes | IO[bytes], sender: str, recipients: Sequence[str]) -> QueueReceipt:
        return run_program(program, message, sender, recipients)

    return enqueue
