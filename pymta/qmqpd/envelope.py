# -*- test-case-name: tests.qmqpd.test_protocol -*-
"""
The envelope rules of pymta's QMQP server, pure.  As in qmail-qmqpd, a
QMQP client is trusted (ROOT/etc/tcp.qmqp lets it in), so there is no
rcpthosts or badmailfrom check: an address is refused only when pymta
cannot take it (too long, not UTF-8, a control character), and then the
whole message is refused with qmail-qmqpd's text.  pymta also refuses a
message without recipients or with more than smtpd's limit per message.
"""

from __future__ import annotations

from typing import Sequence

from pymta.qmtpd.envelope import MAX_RECIPIENTS, EnvelopeDecision, envelope_address

__all__ = ["decide", "TEXT_BAD_ADDRESS", "TEXT_NO_RECIPIENTS", "TEXT_TOO_MANY"]

# qmail-qmqpd's text
TEXT_BAD_ADDRESS = "Dsorry, I can't accept addresses like that (#5.1.3)"
# pymta's
TEXT_NO_RECIPIENTS = "Dsorry, no recipients (#5.1.3)"
TEXT_TOO_MANY = "Dsorry, too many recipients (#5.5.3)"


def decide(sender: bytes, recipients: Sequence[bytes]) -> EnvelopeDecision:
    """
    The message's envelope as queued, or its C{refusal}.  QMQP has one
    reply per message, so C{refusals} is a single entry: the message's.
    """
    sender_text = envelope_address(sender)
    texts = [envelope_address(r) for r in recipients]
    refusal = None
    if not recipients:
        refusal = TEXT_NO_RECIPIENTS
    elif len(recipients) > MAX_RECIPIENTS:
        refusal = TEXT_TOO_MANY
    elif sender_text is None or any(text is None for text in texts):
        refusal = TEXT_BAD_ADDRESS
    accepted = tuple(text for text in texts if text is not None) if refusal is None else ()
    return EnvelopeDecision(sender_text or "", (None,), accepted, refusal)
