# -*- test-case-name: tests.serialmail.test_end_to_end -*-
"""
A L{pymta.serialmail.courier.Courier} over QMTP: C{pymta maildirqmtp}'s.

Each message goes over a connection of its own (pymta's QMTP client,
L{pymta.remote.qmtpclient}, as remote delivery uses it): the held body
from its offset, the held sender, the one recipient.  The server's reply
for that recipient is the message's status: C{K} only when the server
said C{K}.  A
connection that cannot be made is C{Z} with C{stop} set: the run ends
there, as maildirsmtp's does.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint

from pymta.remote.qmtpclient import QMTPClientProtocol
from pymta.serialmail.courier import DEFERRED, Handover
from pymta.serialmail.held import HeldMessage
from pymta.remote.oneconnection import connect_quietly

__all__ = ["QMTPCourier"]



class QMTPCourier:
    """Hands messages to C{host} port C{port}; C{timeout} bounds every wait, C{connect_timeout} each connection."""

    def __init__(self, reactor: Any, host: str, port: int, timeout: float, connect_timeout: float) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    def send(self, message: HeldMessage, body: IO[bytes]) -> "Deferred[Handover]":
        return ensureDeferred(self._send(message, body))

    async def _send(self, message: HeldMessage, body: IO[bytes]) -> Handover:
        protocol = QMTPClientProtocol(self.host, message.sender, [message.recipient], body, self.timeout,
                                      callLater=self.reactor.callLater)
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.connect_timeout)
        try:
            await connect_quietly(endpoint, protocol)
        except Exception as e:
            return Handover(DEFERRED, f"Sorry, I wasn't able to establish a QMTP connection to {self.host}: "
                            f"{e.__class__.__name__}. (#4.4.1)\n", stop=True)
        [outcome] = await protocol.finished  # one recipient, one reply
        return Handover(outcome.status, outcome.text)

    def close(self) -> "Deferred[None]":
        return succeed(None)  # every connection ends with its message
