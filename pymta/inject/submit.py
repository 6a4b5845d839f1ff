# -*- test-case-name: tests.cli.test_inject -*-
"""
Running one injection: read the controls, prepare the message, then queue
it (through L{pymta.queue.client.enqueue}, or the program C{QMAILQUEUE}
names: L{pymta.qmailqueue.blocking}) or print it (C{-n}).

Shared by C{pymta inject} and C{pymta sendmail}; each maps the
L{InjectError} kinds to its own exit codes.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence

from pymta.control import ControlError, load_controls
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.inject.message import (
    CONFIG,
    PERMANENT,
    TEMPORARY,
    InjectError,
    InjectOptions,
    InjectSettings,
    prepare,
)

__all__ = ["Enqueue", "inject", "ChunkReader"]

Enqueue = Callable[..., QueueReceipt]


class ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _default_enqueue(root: str, message: BinaryIO, sender: str, recipients: Sequence[str]) -> QueueReceipt:
    from pymta.queue.client import enqueue

    return enqueue(root, message, sender, recipients)


def _qmailqueue_or_queue(root: str, env: Mapping[str, str], timeout: int) -> Enqueue:
    """The program C{QMAILQUEUE} names (it wins over the queue and a null client's QMQP servers), else the queue."""
    from pymta.qmailqueue.blocking import program_enqueue
    from pymta.qmailqueue.program import program_for

    program = program_for(root, env, timeout=timeout)
    return _default_enqueue if program is None else program_enqueue(program)


def inject(
    root: str,
    options: InjectOptions,
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    enqueue: Enqueue | None = None,
    now: float | None = None,
    pid: int | None = None,
) -> QueueReceipt | None:
    """
    Inject the message on C{stdin}: queued (returns the receipt once it is
    durable) or, with C{options.queue} false, written to C{stdout} (returns
    None).  Raises L{InjectError}.
    """
    try:
        controls = load_controls(root)
    except ControlError as e:
        raise InjectError(f"unable to read controls: {e}", CONFIG) from None
    except OSError as e:
        raise InjectError(f"unable to read controls: {e.strerror}", CONFIG) from None
    settings = InjectSettings.from_environment(env, controls)
    prepared = prepare(stdin, options, settings, now=now, pid=pid)
    if not options.queue:
        for chunk in prepared.chunks():
            stdout.write(chunk)
        stdout.flush()
        return None
    queue = enqueue or _qmailqueue_or_queue(root, env, controls.timeoutqmailqueue)
    try:
        return queue(root, io.BufferedReader(ChunkReader(prepared.chunks())), prepared.sender, prepared.recipients)
    except QueueRefused as e:
        # qmail's text, then what exactly happened when the queue says so
        detail = getattr(e, "detail", "")
        text = f"{e.text} [{detail}]" if detail else e.text
        raise InjectError(text, PERMANENT if e.permanent else TEMPORARY, getattr(e, "exit_code", None)) from None
