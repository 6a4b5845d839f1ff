# -*- test-case-name: tests.qmailhelpers.test_forward -*-
"""
Queueing the message on stdin again, for C{forward} and C{condredirect}:
C{$DTLINE} followed by stdin from its current offset, through the queue
client of command-line tools (L{pymta.queue.client.enqueue}: the inject
socket of C{$PYMTA_ROOT}, else C{/var/pymta}).  The helper runs as the
delivering user, so the queue records it as C{by uid N}, as it records
forwards of C{.qmail} lines.

The queue's refusal ends the helper as qmail's helpers end after a failed
qmail-queue: 100 for a permanent refusal, 111 otherwise, with the queue's
text.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Mapping, Sequence

from pymta.qmailhelpers.common import PERMANENT, TEMPORARY, Fatal, reason

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["requeue", "queue_root", "DEFAULT_ROOT"]

DEFAULT_ROOT = "/var/pymta"


class _HeadThenStdin(io.RawIOBase):
    """C{head}, then whatever fd 0 holds from its current offset."""

    def __init__(self, head: bytes, fd: int = 0) -> None:
        super().__init__()
        self._head = head
        self._fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = os.read(self._fd, len(view))
        view[: len(data)] = data
        return len(data)


def queue_root(environ: Mapping[str, str]) -> str:
    """The pymta root whose queue takes the message: C{$PYMTA_ROOT}, else L{DEFAULT_ROOT}."""
    return environ.get("PYMTA_ROOT") or DEFAULT_ROOT


def requeue(root: str, dtline: str, sender: str, recipients: Sequence[str]) -> int:
    """Queue C{dtline} + stdin from C{sender} to C{recipients}; the qp number, or L{Fatal}."""
    from pymta.interfaces import QueueRefused
    from pymta.queue.client import enqueue

    message = io.BufferedReader(_HeadThenStdin(dtline.encode("utf-8", "surrogateescape")))
    try:
        receipt = enqueue(root, message, sender, list(recipients))
    except QueueRefused as e:
        raise Fatal(PERMANENT if e.permanent else TEMPORARY, e.text) from None
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to queue the message: {reason(e)}") from None
    return receipt.qp
