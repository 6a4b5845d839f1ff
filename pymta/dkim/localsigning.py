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
signed when its From domain has keys, and only then written into the
queue, whose commit the client waits for.  The signature is in the queued
message, so every delivery attempt sends the same bytes.

Other origins pass straight through: C{from network} (smtpd signed what
it had to), C{for bounce}, C{by alias}.  Without keys nothing is spooled.
"""

from __future__ import annotations

from typing import Sequence

from pymta.dkim.signing import DKIMSigning
from pymta.dsn.params import MessageDsn
from pymta.interfaces import MessageSink, MessageWriter
from pymta.smtpd.spool import SpooledMessage, SpoolingWriter

__all__ = ["LocalSigningSink", "Signatures"]

LOCAL_ORIGIN = "by uid "


class Signatures:
    """The header edit of L{pymta.smtpd.spool.SpoolingWriter}: the signature fields on top."""

    drop = None

    def __init__(self, add: tuple[bytes, ...]) -> None:
        self.add = add


class LocalSigningSink:
    """A L{MessageSink} signing locally injected messages before they go into C{sink}."""

    def __init__(self, sink: MessageSink, signing: DKIMSigning) -> None:
        self.sink = sink
        self.signing = signing

    def open_message(self, sender: str, recipients: Sequence[str], *, origin: str,
                     uid: int | None = None, pid: int | None = None, dsn: MessageDsn | None = None) -> MessageWriter:
        def real_writer() -> MessageWriter:
            if dsn is None:  # as the sink was called before DSN: sinks and fakes without the keyword still work
                return self.sink.open_message(sender, recipients, origin=origin, uid=uid, pid=pid)
            return self.sink.open_message(sender, recipients, origin=origin, uid=uid, pid=pid, dsn=dsn)

        if not origin.startswith(LOCAL_ORIGIN) or not self.signing.active:
            return real_writer()
        return SpoolingWriter(real_writer, self._signatures)

    async def _signatures(self, message: SpooledMessage) -> list[Signatures]:
        return [Signatures(await self.signing.sign(message.read()))]
