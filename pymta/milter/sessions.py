# -*- test-case-name: tests.milter.test_sessions -*-
"""
Where smtpd gets a L{pymta.milter.api.MilterSession} for each SMTP session.

L{Milters.session} reads control/milters from the current controls
snapshot (parsed once per snapshot: L{pymta.snapshotcache.PerSnapshot}),
and gives None when no filter is listed, so a site without filters pays
nothing more.  Otherwise a L{MilterChain} of one L{FilterSession} per
filter: one connection per filter per SMTP session, as Postfix opens
them, made at the connect stage through Twisted endpoints (unix or TCP to
an IP address: no DNS lookup, no thread).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint

from pymta.control import ControlReader, Controls
from pymta.milter.api import MilterSession
from pymta.milter.chain import MilterChain
from pymta.milter.connection import MilterConnection
from pymta.milter.filter import Connector, FilterSession
from pymta.milter.settings import MilterSpec, milter_specs
from pymta.snapshotcache import PerSnapshot

__all__ = ["Milters", "milters_from_control", "endpoint_connector"]


def endpoint_connector(reactor: IReactorTime) -> Connector:
    """Connect to a filter's socket with the reactor (C{reactor} must also connect TCP and unix sockets)."""
    def connect(spec: MilterSpec) -> "defer.Deferred[MilterConnection]":
        endpoint: IStreamClientEndpoint
        if spec.family == "unix":
            endpoint = UNIXClientEndpoint(reactor, spec.address, timeout=spec.connect_timeout)
        elif spec.family == "inet6":
            endpoint = TCP6ClientEndpoint(reactor, spec.address, spec.port, timeout=spec.connect_timeout)
        else:
            endpoint = TCP4ClientEndpoint(reactor, spec.address, spec.port, timeout=spec.connect_timeout)
        return connectProtocol(endpoint, MilterConnection(reactor))
    return connect


class Milters:
    """The filters of the current control/milters, a new chain per SMTP session."""

    def __init__(self, current: Callable[[], Controls], clock: IReactorTime,
                 connector: Connector | None = None) -> None:
        self.current = current
        self.clock = clock
        self.connector = connector if connector is not None else endpoint_connector(clock)
        self._specs = PerSnapshot(milter_specs)

    def session(self) -> MilterSession | None:
        """The filters for a new SMTP session, or None when control/milters lists none."""
        specs = self._specs(self.current())
        if not specs:
            return None
        return MilterChain([FilterSession(spec, self.clock, self.connector) for spec in specs])


def milters_from_control(reader: ControlReader, reactor: IReactorTime) -> Milters:
    """L{Milters} over a daemon's control reader (its current snapshot at each session)."""
    return Milters(lambda: reader.current, reactor)
