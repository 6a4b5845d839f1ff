# -*- test-case-name: tests.qmtpd.test_protocol -*-
"""
The envelope rules of pymta's QMTP server, pure: a message's sender and
recipients as they came in netstrings, judged with smtpd's rules
(L{pymta.smtpd.policy}: badmailfrom, rcpthosts and RELAYCLIENT, the relay
tricks, C{[ip]} literals of this host).

QMTP answers once per recipient, in order, so each recipient is judged on
its own (L{EnvelopeDecision.refusals}): a refused one gets its own C{D}
reply, with qmail-qmtpd's texts, and the message is queued for the others.
What refuses the sender (an address pymta cannot take, badmailfrom) is
the answer to every recipient that passed (L{EnvelopeDecision.refusal}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from pymta.control import Controls
from pymta.smtpd import policy

__all__ = [
    "EnvelopeDecision",
    "decide",
    "MAX_RECIPIENTS",
    "TEXT_BAD_SENDER",
    "TEXT_BAD_RECIPIENT",
    "TEXT_RCPTHOSTS",
    "TEXT_TOO_MANY",
    "envelope_address",
]

#: recipients one message may have (smtpd's limit per transaction); the others are refused
MAX_RECIPIENTS = 1000

# qmail-qmtpd's texts
TEXT_BAD_SENDER = "Dunacceptable sender (#5.1.7)"
TEXT_BAD_RECIPIENT = "Dsorry, I can't handle that recipient (#5.1.3)"
TEXT_RCPTHOSTS = "D" + policy.REPLY_RCPTHOSTS[4:]
# pymta's
TEXT_TOO_MANY = "Dsorry, too many recipients (#5.5.3)"
TEXT_BADMAILFROM = "D" + policy.REPLY_BADMAILFROM[4:]


@dataclass(frozen=True)
class EnvelopeDecision:
    """
    C{refusals}: per recipient in the client's order, None (accepted) or
    the reply refusing it.  C{recipients}: the accepted ones as they are
    queued (RELAYCLIENT appended), in order.  C{refusal}: when set, the
    reply to every accepted recipient instead of queueing the message.
    """

    sender: str
    refusals: tuple[str | None, ...]
    recipients: tuple[str, ...] = ()
    refusal: str | None = None

    @property
    def queue(self) -> bool:
        """Whether the message goes into the queue (before its size and the queue have spoken)."""
        return self.refusal is None and bool(self.recipients)

    def replies(self, result: str) -> list[str]:
        """One reply per recipient: its refusal, or C{result} (the message's) for an accepted one."""
        return [result if refused is None else refused for refused in self.refusals]


def _text(address: bytes) -> str | None:
    """The address as text; None when it is too long, not UTF-8 or has control characters."""
    if len(address) > policy.MAX_ADDRESS_BYTES:
        return None
    try:
        text = address.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if policy.has_control_character(text) else text


#: an address as text, or None when pymta cannot take it (shared with L{pymta.qmqpd.envelope})
envelope_address = _text


def decide(
    controls: Controls,
    sender: bytes,
    recipients: Sequence[bytes],
    *,
    relayclient: str | None,
    local_ips: Iterable[str],
) -> EnvelopeDecision:
    """Whom the message may be queued for, and every recipient's refusal (see the module's description)."""
    ips = frozenset(local_ips)
    refusals: list[str | None] = []
    accepted: list[str] = []
    for index, raw in enumerate(recipients):
        text = _text(raw)
        if index >= MAX_RECIPIENTS:
            refusals.append(TEXT_TOO_MANY)
        elif text is None:
            refusals.append(TEXT_BAD_RECIPIENT)
        else:
            address = policy.replace_local_ip(controls, text, ips)
            decision = policy.rcpt_decision(controls, address, relayclient=relayclient, authenticated=False)
            if decision.recipient is None:
                refusals.append("D" + decision.reply[4:])
            else:
                refusals.append(None)
                accepted.append(decision.recipient)
    sender_text = _text(sender)
    refusal = None
    if sender_text is None:
        refusal = TEXT_BAD_SENDER
    elif policy.is_bad_mailfrom(controls, sender_text):
        refusal = TEXT_BADMAILFROM
    return EnvelopeDecision(sender_text or "", tuple(refusals), tuple(accepted), refusal)
