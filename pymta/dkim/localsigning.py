# -*- test-case-name: tests.dkim.test_localsigning -*-
"""
DKIM signing of locally injected mail, at the inject socket of pymta-send.

C{pymta inject}, C{pymta sendmail} and C{pymta queue} run as any user and
hand their message to pymta-send over the inject socket
(L{pymta.queue.injectserver}); the key files are readable only by the mail
account pymta-send runs as.  So pymta-send signs: L{LocalSigningSink}
wraps the sink the inject socket writes into, and a message whose origin
is C{by uid N} (a local user's injection: the kernel's word for the peer,
never the client's) is spooled (L{pymta.smtpd.spool.SpoolingWriter}),
signed when it originated here and its From domain has keys, and only
then written into the queue, whose commit the client waits for.  The
signature is in the queued message, so every delivery attempt sends the
same bytes.

Originated here means: the header has no C{Delivered-To:} and no
C{Received:} field (L{forwarded}).  Delivery programs re-inject through
the same socket as C{by uid N} (C{forward}, fastforward, dot-forward,
C{qmail-queue} under C{QMAILQUEUE}, list managers), and what they pass on
came from elsewhere: every local delivery puts a C{Delivered-To:} line on
top, and mail from the network carries the C{Received:} lines of the
hops it took.  A message a local user writes has neither (the queue adds
pymta's own C{Received:} line after this sink).  Without that rule a
stranger's C{From: ceo@DOMAIN}, forwarded by an alias, would leave with a
valid signature of DOMAIN.  Any field of either name counts, whatever it
says: a stranger can write any text into one.

Other origins pass straight through: C{from network} (smtpd signed what
it had to), C{for bounce}, C{by alias}.  Without keys nothing is spooled.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from pymta.dkim.signer import wire_form
from pymta.dkim.signing import DKIMSigning
from pymta.dsn.params import MessageDsn
from pymta.interfaces import MessageSink, MessageWriter
from pymta.smtpd.spool import SpooledMessage, SpoolingWriter

__all__ = ["LocalSigningSink", "Signatures", "forwarded"]

LOCAL_ORIGIN = "by uid "
_PASSED_ON = re.compile(rb"(?:received|delivered-to)[ \t]*:", re.IGNORECASE)


def forwarded(header: bytes) -> bool:
    """Whether a header (as stored) has a C{Received:} or C{Delivered-To:} field: mail that came from elsewhere."""
    for line in wire_form(header).split(b"\r\n"):
        if not line:
            break
        if _PASSED_ON.match(line):
            return True
    return False


class Signatures:
    """The header edit of L{pymta.smtpd.spool.SpoolingWriter}: the signature fields on top."""

    drop = None
    message = None  # the message itself is not rewritten

    def __init__(self, add: tuple[bytes, ...]) -> None:
        self.add = add


class LocalSigningSink:
    """A L{MessageSink} signing locally injected messages before they go into C{sink}."""

    def __init__(self, sink: MessageSink, signing: DKIMSigning) -> None:
        self.sink = sink
        self.signing = signing

    def open_message(self, sender: str, recipients: Sequence[str], *, origin: str,
                     uid: int | None = None, pid: int | None = None, dsn: MessageDsn | None = None,
                     held: bool = False) -> MessageWriter:
        # as the sink was called before DSN and holds: sinks and fakes without the keywords still work
        extra: dict[str, Any] = {"dsn": dsn} if dsn is not None else {}
        if held:
            extra["held"] = True

        def real_writer() -> MessageWriter:
            return self.sink.open_message(sender, recipients, origin=origin, uid=uid, pid=pid, **extra)

        if not origin.startswith(LOCAL_ORIGIN) or not self.signing.active:
            return real_writer()
        return SpoolingWriter(real_writer, self._signatures)

    async def _signatures(self, message: SpooledMessage) -> list[Signatures]:
        if forwarded(message.header()):
            return []
        return [Signatures(await self.signing.sign_spooled(message))]
