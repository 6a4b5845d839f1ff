# -*- test-case-name: tests.queue.test_bounce -*-
"""
Bounces in QSBMF (qmail-send bounce message format); see docs/internals.md,
'Bounces'.

- L{bounce_entry}: the text appended to C{queue/bounce/ID} for one failed
  recipient (C{<addr>:} then the report, paragraphs never broken).
- L{bounce_envelope}: who a bounce goes from and to, or C{None} for a
  triple bounce (the failed message was itself a double bounce).
- L{compose_bounce}: the bounce message, streamed into a
  L{pymta.interfaces.MessageWriter} piece by piece.
- L{verp_sender}: the envelope sender for one recipient of a VERP message.

The prose sentences are pymta's own; the parts QSBMF parsers key on are
qmail's: the first body line starts with C{Hi. This is the}, the C{<addr>:}
blocks, and the C{--- Below this line is ...} marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable

from pymta.address import qmail_date, quote_address, quote_local
from pymta.control import Controls

__all__ = [
    "DOUBLE_BOUNCE_SENDER",
    "SINGLE_MARKER",
    "DOUBLE_MARKER",
    "BounceEnvelope",
    "bounce_entry",
    "bounce_envelope",
    "compose_bounce",
    "verp_sender",
    "unverp",
]

DOUBLE_BOUNCE_SENDER = "#@[]"
VERP_SUFFIX = "-@[]"
SINGLE_MARKER = "--- Below this line is a copy of the message.\n\n"
DOUBLE_MARKER = "--- Below this line is the original bounce.\n\n"

SINGLE_INTRO = (
    "I could not deliver your message to the addresses listed below.\n"
    "The failure is permanent, so I have stopped trying; sorry it did not work out.\n"
    "\n"
)
DOUBLE_INTRO = (
    "I tried to deliver a failure notice to this address, but the notice itself bounced!\n"
    "\n"
)

_ENC = "utf-8"
_ERRORS = "surrogateescape"
_CHUNK = 65536


def _b(text: str) -> bytes:
    return text.encode(_ENC, _ERRORS)


def bounce_entry(recipient: str, report: str) -> bytes:
    """
    One recipient's block of C{bounce/ID}: C{<recipient>:}, the report with a
    final newline, then an empty line.  Newlines inside the recipient become
    C{_}; the report's trailing newlines are dropped and any newline right
    after another newline (the header's included) becomes C{/}, so the block
    holds no empty line of its own: QSBMF parsers split blocks on it.
    """
    header = b"<" + _b(recipient).replace(b"\n", b"_") + b">:\n"
    raw = _b(report).rstrip(b"\n")
    text = bytearray(header + raw)
    # backwards, so every newline is compared with the original character before it
    for pos in range(len(text) - 1, len(header) - 1, -1):
        if text[pos] == 0x0A and text[pos - 1] == 0x0A:
            text[pos] = 0x2F
    if raw:
        text += b"\n"
    text += b"\n"
    return bytes(text)


def verp_sender(sender: str, recipient: str) -> str:
    """
    C{prefix@host-@[]} sent to C{box@rhost} becomes C{prefixbox=rhost@host};
    any other sender, or a recipient without C{@}, is returned unchanged.
    """
    if not sender.endswith(VERP_SUFFIX):
        return sender
    body = sender[: -len(VERP_SUFFIX)]
    at = body.rfind("@")
    rat = recipient.rfind("@")
    if at == -1 or rat == -1:
        return sender
    return body[:at] + recipient[:rat] + "=" + recipient[rat + 1 :] + "@" + body[at + 1 :]


def unverp(sender: str) -> str:
    """C{owner-@host-@[]} becomes C{owner-@host}; other senders stay."""
    if sender.endswith(VERP_SUFFIX):
        return sender[: -len(VERP_SUFFIX)]
    return sender


@dataclass(frozen=True)
class BounceEnvelope:
    """The bounce's envelope and whether it is a double bounce."""

    sender: str
    recipient: str
    original_sender: str
    double: bool


def bounce_envelope(sender: str, controls: Controls) -> BounceEnvelope | None:
    """
    The envelope of the bounce for a message from C{sender}: to the sender
    from C{<>}; for a bounce (null sender), a double bounce from C{#@[]} to
    doublebounceto@doublebouncehost; C{None} when C{sender} is C{#@[]}
    (a triple bounce, to be logged and discarded).
    """
    sender = unverp(sender)
    if sender == DOUBLE_BOUNCE_SENDER:
        return None
    if sender:
        return BounceEnvelope("", sender, sender, False)
    recipient = controls.doublebounceto + "@" + controls.doublebouncehost
    return BounceEnvelope(DOUBLE_BOUNCE_SENDER, recipient, sender, True)


def _copy(source: BinaryIO, write: Callable[[bytes], None]) -> None:
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            return
        write(chunk)


def compose_bounce(
    write: Callable[[bytes], None],
    envelope: BounceEnvelope,
    controls: Controls,
    failures: BinaryIO,
    message: BinaryIO,
    now: float,
) -> None:
    """
    Write the whole bounce message through C{write}: header, the greeting
    line, the explanation, the C{bounce/ID} blocks read from C{failures}, the
    marker, C{Return-Path:} and the original queued message from C{message}.
    """
    head = (
        f"Date: {qmail_date(now)}\n"
        f"From: {quote_local(controls.bouncefrom)}@{controls.bouncehost}\n"
        f"To: {quote_address(envelope.recipient)}\n"
        "Subject: failure notice\n"
        "\n"
        f"Hi. This is the pymta-send program at {controls.bouncehost}.\n"
    )
    write(_b(head + (DOUBLE_INTRO if envelope.double else SINGLE_INTRO)))
    _copy(failures, write)
    marker = DOUBLE_MARKER if envelope.double else SINGLE_MARKER
    write(_b(marker + f"Return-Path: <{quote_address(envelope.original_sender)}>\n"))
    _copy(message, write)
