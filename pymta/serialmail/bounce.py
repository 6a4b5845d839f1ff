# -*- test-case-name: tests.serialmail.test_bounce -*-
"""
Bouncing a held message the server refused for good (or held too long).

As serialmail's maildirserial does: the failure notice goes through the
queue (L{pymta.queue.client.enqueue}) to the held message's sender, from
C{<>}; for a held bounce (null sender) a double bounce goes from C{#@[]}
to doublebounceto@doublebouncehost; a held double bounce (sender C{#@[]})
is dropped.  The notice is in QSBMF, like pymta-send's
(L{pymta.queue.bounce}): the address the server refused (the envelope
recipient, without the prefix), the server's report, then the held message
after its C{Return-Path} and C{Delivered-To} lines, under a
C{Return-Path:} line of its own.
"""

from __future__ import annotations

import io
from typing import IO, Callable, Iterator, Sequence

from pymta.address import qmail_date, quote_address, quote_local
from pymta.control import Controls
from pymta.inject.submit import ChunkReader
from pymta.interfaces import QueueReceipt
from pymta.queue.bounce import (
    DOUBLE_INTRO,
    DOUBLE_MARKER,
    SINGLE_INTRO,
    SINGLE_MARKER,
    BounceEnvelope,
    bounce_entry,
    bounce_envelope,
)
from pymta.serialmail.held import HeldMessage

__all__ = ["TOO_OLD_TEXT", "bounce_chunks", "Bouncer"]

TOO_OLD_TEXT = "This message has been held too long. Giving up.\n"
_CHUNK = 65536

Enqueue = Callable[[str, IO[bytes], str, Sequence[str]], QueueReceipt]


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def bounce_chunks(envelope: BounceEnvelope, controls: Controls, program: str, message: HeldMessage, report: str,
                  body: IO[bytes], now: float) -> Iterator[bytes]:
    """The failure notice for C{message}, piece by piece; C{body} is read from the held message's body."""
    yield _b(
        f"Date: {qmail_date(now)}\n"
        f"From: {quote_local(controls.bouncefrom)}@{controls.bouncehost}\n"
        f"To: {quote_address(envelope.recipient)}\n"
        "Subject: failure notice\n"
        "\n"
        f"Hi. This is the {program} program at {controls.bouncehost}.\n"
        + (DOUBLE_INTRO if envelope.double else SINGLE_INTRO)
    )
    yield bounce_entry(message.recipient, report)
    marker = DOUBLE_MARKER if envelope.double else SINGLE_MARKER
    yield _b(marker + f"Return-Path: <{quote_address(message.sender)}>\n")
    while chunk := body.read(_CHUNK):
        yield chunk


class Bouncer:
    """
    Queues failure notices into the pymta root C{root}.  Calling it returns
    the notice's qp number, or None for a held double bounce (dropped);
    L{pymta.interfaces.QueueRefused} when the queue did not take it.
    """

    def __init__(self, root: str, controls: Controls, program: str, now: Callable[[], float],
                 enqueue: Enqueue | None = None) -> None:
        self.root = root
        self.controls = controls
        self.program = program
        self.now = now
        if enqueue is None:
            from pymta.queue.client import enqueue as queue_enqueue

            enqueue = queue_enqueue
        self.enqueue = enqueue

    def __call__(self, message: HeldMessage, report: str, too_old: bool) -> int | None:
        envelope = bounce_envelope(message.sender, self.controls)
        if envelope is None:
            return None
        if too_old:
            report = report.rstrip("\n") + "\n" + TOO_OLD_TEXT if report else TOO_OLD_TEXT
        with open(message.path, "rb") as body:
            body.seek(message.body_offset)
            chunks = bounce_chunks(envelope, self.controls, self.program, message, report, body, self.now())
            stream = io.BufferedReader(ChunkReader(chunks))
            receipt = self.enqueue(self.root, stream, envelope.sender, [envelope.recipient])
        return receipt.qp
