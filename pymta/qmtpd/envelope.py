# -*- test-case-name: tests.qmtpd.test_envelope -*-
"""
The envelope rules of pymta's QMTP server, pure: a message's sender and
recipients as they came in netstrings, judged with smtpd's rules
(L{pymta.smtpd.policy}: badmailfrom, rcpthosts and RELAYCLIENT, the relay
tricks, C{[ip]} literals of this host).

QMTP has one answer per message, so one refused recipient refuses the
message (C{D}, permanent), as in qmail-qmtpd; the client bounces it for
every recipient, which is what it would do with SMTP's refusal of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from pymta.control import Controls
from pymta.queue.framing import FramingError, NetstringParser
from pymta.smtpd import policy

__all__ = [
    "EnvelopeDecision",
    "decide",
    "split_netstrings",
    "MAX_RECIPIENTS",
    "TEXT_ADDRESS",
    "TEXT_NO_RECIPIENTS",
    "TEXT_TOO_MANY",
]

#: recipients one message may have (smtpd's limit per transaction)
MAX_RECIPIENTS = 1000

TEXT_ADDRESS = "Dsorry, address must be shorter than 900 bytes and hold no control characters (#5.1.3)"
TEXT_NO_RECIPIENTS = "Dsorry, a message needs at least one recipient (#5.1.3)"
TEXT_TOO_MANY = "Dsorry, too many recipients (#5.5.3)"


@dataclass(frozen=True)
class EnvelopeDecision:
    """C{recipients} to queue (RELAYCLIENT appended), or C{refusal}: the reply (letter and text) instead."""

    sender: str
    recipients: tuple[str, ...] = ()
    refusal: str | None = None


def split_netstrings(payload: bytes) -> list[bytes] | None:
    """The netstrings C{payload} is made of, or None when it is anything else."""
    parser = NetstringParser(len(payload))
    parser.feed(payload)
    out: list[bytes] = []
    try:
        while (value := parser.next()) is not None:
            out.append(value)
    except FramingError:
        return None
    return None if parser.pending() else out


def _text(address: bytes) -> str | None:
    """The address as text; None when it is too long, not UTF-8 or has control characters."""
    if len(address) > policy.MAX_ADDRESS_BYTES:
        return None
    try:
        text = address.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if policy.has_control_character(text) else text


def decide(
    controls: Controls,
    sender: bytes,
    recipients: Sequence[bytes],
    *,
    relayclient: str | None,
    local_ips: Iterable[str],
) -> EnvelopeDecision:
    """Whether the message may be queued, and for whom (see the module's description)."""
    sender_text = _text(sender)
    if sender_text is None:
        return EnvelopeDecision("", refusal=TEXT_ADDRESS)
    if not recipients:
        return EnvelopeDecision(sender_text, refusal=TEXT_NO_RECIPIENTS)
    if len(recipients) > MAX_RECIPIENTS:
        return EnvelopeDecision(sender_text, refusal=TEXT_TOO_MANY)
    if policy.is_bad_mailfrom(controls, sender_text):
        return EnvelopeDecision(sender_text, refusal="D" + policy.REPLY_BADMAILFROM[4:])
    ips = frozenset(local_ips)
    accepted: list[str] = []
    for raw in recipients:
        text = _text(raw)
        if text is None:
            return EnvelopeDecision(sender_text, refusal=TEXT_ADDRESS)
        address = policy.replace_local_ip(controls, text, ips)
        decision = policy.rcpt_decision(controls, address, relayclient=relayclient, authenticated=False)
        if decision.recipient is None:
            return EnvelopeDecision(sender_text, refusal="D" + decision.reply[4:])
        accepted.append(decision.recipient)
    return EnvelopeDecision(sender_text, tuple(accepted))
