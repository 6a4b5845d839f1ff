# -*- test-case-name: tests.serialmail.test_smtpcourier -*-
"""
A L{pymta.serialmail.courier.Courier} over SMTP: C{pymta maildirsmtp}'s.

It is pymta's own SMTP client (L{pymta.remote.client.SMTPClientProtocol},
qmail-remote's dialogue and report texts) on one connection kept open
between messages: each message is one transaction (C{MAIL FROM} the held
sender, one C{RCPT TO}, C{DATA}).  A connection the server closed (after a
refusal, or idle too long) is replaced by a new one for the next message.

The reports follow qmail-rspawn's rule for one recipient
(L{pymta.remote.channel.combine_report}): C{K} only after a 2xx reply to
the final dot.  When the server cannot be reached or will not talk (no
connection, greeting or EHLO/HELO refused, the connection lost before
C{MAIL}), the report is C{Z} with C{stop} set: the run ends there.
Plain text only (serialmail's serialsmtp has no TLS either).
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint

from pymta.remote.channel import combine_report
from pymta.remote.client import SMTPClientProtocol
from pymta.serialmail.courier import DEFERRED, Handover
from pymta.serialmail.held import HeldMessage
from pymta.remote.oneconnection import connect_quietly

__all__ = ["SMTPCourier"]



class SMTPCourier:
    """
    Hands messages to C{host} port C{port}, greeting it as C{helohost}.
    C{timeout} bounds every wait for the server (control/timeoutremote),
    C{connect_timeout} each connection attempt (control/timeoutconnect).
    """

    def __init__(self, reactor: Any, host: str, port: int, helohost: str, timeout: float,
                 connect_timeout: float) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.helohost = helohost
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._protocol: SMTPClientProtocol | None = None

    def send(self, message: HeldMessage, body: IO[bytes]) -> "Deferred[Handover]":
        return ensureDeferred(self._send(message, body))

    async def _send(self, message: HeldMessage, body: IO[bytes]) -> Handover:
        kept = self._protocol
        self._protocol = None
        if kept is not None and kept.idle and kept.connected:
            outcome = await kept.start_transaction(message.sender, [message.recipient], body)
            if not outcome.stale:
                return self._judged(kept, outcome)
            body.seek(message.body_offset)  # the kept connection was gone: nothing was sent
        protocol = SMTPClientProtocol(self.host, self.helohost, message.sender, [message.recipient], body,
                                      self.timeout, keep_open=True)
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.connect_timeout)
        try:
            await connect_quietly(endpoint, protocol)
        except Exception as e:
            return Handover(DEFERRED, f"Sorry, I wasn't able to establish an SMTP connection to {self.host}: "
                            f"{e.__class__.__name__}. (#4.4.1)\n", stop=True)
        outcome = await protocol.finished
        return self._judged(protocol, outcome)

    def _judged(self, protocol: SMTPClientProtocol, outcome: Any) -> Handover:
        if protocol.idle and protocol.connected:
            self._protocol = protocol
        result = combine_report(outcome.recipients.get(0), outcome.status, outcome.text)
        return Handover(result.status, result.text, stop=outcome.next_host)

    def close(self) -> "Deferred[None]":
        protocol, self._protocol = self._protocol, None
        if protocol is None or not protocol.connected:
            return succeed(None)
        protocol.quit()
        return protocol.closed
