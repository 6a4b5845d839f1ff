"""
The transport of a connected stream protocol, as a type.

Twisted types C{Protocol.transport} as C{ITransport | None}: None before
C{makeConnection}, and only the methods every transport has.  The
transports Twisted gives pymta's stream protocols (TCP, UNIX, TLS and
stdio) do more: they are push producers (C{pauseProducing} stops reading
the peer) and consumers (C{registerProducer}), and their C{disconnecting}
says whether C{loseConnection} was already called.  A protocol whose
methods run only while it is connected declares C{transport:
IStreamTransport}, so the type checker sees what the code relies on.

L{ISocketStreamTransport} adds C{abortConnection} (TCP, UNIX and TLS, not
stdio); C{startTLS} stays with Twisted's L{ITLSTransport}.
"""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport

__all__ = ["IStreamTransport", "ISocketStreamTransport"]


class IStreamTransport(ITransport, IPushProducer, IConsumer):
    """A connected TCP, UNIX, TLS or stdio transport."""

    # true once loseConnection() was called: an attribute of every such
    # transport that no Twisted interface declares (documented as a bool,
    # some still set 0 and 1); a type here rather than an interface
    # Attribute, so the checker knows what it holds
    disconnecting: bool


class ISocketStreamTransport(IStreamTransport):
    """A connected TCP, UNIX or TLS transport: a socket, which can also be aborted."""

    def abortConnection() -> None:
        """Close at once, dropping what is not written yet (as L{ITCPTransport.abortConnection})."""
