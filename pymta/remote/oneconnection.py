"""
Connecting one prepared client protocol to an endpoint, quietly.

Twisted's L{twisted.internet.endpoints.connectProtocol} does the same with
a noisy factory (a log line per connection); remote delivery, QMTP and
serialmail open many connections, so theirs says nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory

__all__ = ["connect_quietly"]

P = TypeVar("P", bound=IProtocol)


class _OneConnection(Factory):
    """Hands out one prepared protocol, without a log line per connection."""

    noisy = False

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Any:
        return self._protocol


def connect_quietly(endpoint: IStreamClientEndpoint, protocol: P) -> "Deferred[P]":
    """Connect C{protocol} through C{endpoint}; fires with it once connected, or with the connection error."""
    return cast("Deferred[P]", endpoint.connect(_OneConnection(protocol)))  # connect fires with what buildProtocol gave
