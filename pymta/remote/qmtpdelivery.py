# -*- test-case-name: tests.remote.test_qmtpdelivery -*-
"""
Remote delivery over QMTP, for the domains control/qmtproutes names
(L{pymta.remote.qmtproutes}); the remote channel
(L{pymta.remote.channel.RemoteChannel}) hands them here.

The targets are planned as for SMTP (L{pymta.remote.routes.TargetPlanner}:
the relay's addresses, or the domain's MX hosts with the self check), on
the route's port (209 unless the line says otherwise).  Addresses the
dead-host memory marks as dead are skipped; a failed connect moves on to
the next address (a timeout is remembered); the first connection made
carries the message (L{pymta.remote.qmtpclient.QMTPClientProtocol}) and
the server's reply for each recipient is that recipient's result (those
the connection ends without answering are deferred).  No connection: C{Z}
"Sorry, I wasn't able to establish a QMTP connection. (#4.4.1)".
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import defer, error
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.logger import Logger

from pymta.control import Controls
from pymta.interfaces import DEFERRAL, DeliveryJob, DeliveryResult
from pymta.remote.qmtpclient import QMTPClientProtocol, QMTPOutcome
from pymta.remote.qmtproutes import QMTPRoutes, qmtp_routes
from pymta.remote.routes import RouteFailure, TargetPlanner
from pymta.remote.smtproutes import Route
from pymta.remote.deadhosts import remember, skipped_as_dead
from pymta.remote.tcpto import DeadHostMemory
from pymta.remote.oneconnection import connect_quietly
from pymta.snapshotcache import PerSnapshot

__all__ = ["QMTPDelivery", "TEXT_NO_QMTP_CONNECTION"]

TEXT_NO_QMTP_CONNECTION = "Sorry, I wasn't able to establish a QMTP connection. (#4.4.1)\n"
TEXT_NO_MESSAGE = "Unable to read message. (#4.3.0)\n"

log = Logger(namespace="pymta.remote")



class QMTPDelivery:
    """QMTP's part of the remote channel: the routes table per snapshot and the deliveries."""

    def __init__(self, planner: TargetPlanner, dead_hosts: DeadHostMemory, reactor: Any) -> None:
        self.planner = planner
        self.dead_hosts = dead_hosts
        self.reactor = reactor
        self._table: PerSnapshot[QMTPRoutes] = PerSnapshot(qmtp_routes)
        self._active: set[QMTPClientProtocol] = set()

    def routes(self, controls: Controls) -> QMTPRoutes:
        """control/qmtproutes of C{controls}, parsed once per snapshot (L{pymta.control.ControlError} on a bad line)."""
        return self._table(controls)

    def route_for(self, controls: Controls, domain: str) -> Route | None:
        """The QMTP route of C{domain}, or None (SMTP as usual)."""
        return self.routes(controls).route_for(domain)

    def stop(self) -> None:
        """Drop the connections in flight (their recipients are deferred)."""
        for protocol in list(self._active):
            if protocol.transport is not None:
                protocol.transport.abortConnection()

    @defer.inlineCallbacks
    def deliver(
        self, job: DeliveryJob, controls: Controls, domain: str, recipients: list[str], route: Route
    ) -> Generator[Deferred[Any], Any, list[DeliveryResult]]:
        """One result per recipient, from the server's reply for it."""
        try:
            targets = yield self.planner.plan_route(domain, route)
        except RouteFailure as failure:
            return [DeliveryResult(failure.status, failure.text + "\n") for _ in recipients]
        for target in targets:
            if skipped_as_dead(self.dead_hosts, log, job, target.address):
                continue
            outcomes = yield self._session(job, controls, recipients, target.address, target.port)
            if outcomes is not None:
                return [DeliveryResult(outcome.status, outcome.text) for outcome in outcomes]
        return [DeliveryResult(DEFERRAL, TEXT_NO_QMTP_CONNECTION) for _ in recipients]

    @defer.inlineCallbacks
    def _session(
        self, job: DeliveryJob, controls: Controls, recipients: list[str], address: str, port: int
    ) -> Generator[Deferred[Any], Any, list[QMTPOutcome] | None]:
        """The outcome of one connection for each recipient, or None when it could not be made."""
        try:
            message = open(job.message_path, "rb")
        except OSError as e:
            log.error("{job}: cannot open message {path}: {error}", job=job.about(), message_id=job.message_id,
                      path=job.message_path, error=e)
            return [QMTPOutcome(DEFERRAL, TEXT_NO_MESSAGE) for _ in recipients]
        try:
            protocol = QMTPClientProtocol(address, job.sender, recipients, message, timeout=controls.timeoutremote,
                                          callLater=self.reactor.callLater)
            endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
            endpoint = endpoint_class(self.reactor, address, port, timeout=controls.timeoutconnect)
            try:
                yield connect_quietly(endpoint, protocol)
            except (error.TimeoutError, error.TCPTimedOutError):
                log.info("{job}: QMTP connect to {address}:{port} timed out", job=job.about(),
                         message_id=job.message_id, address=address, port=port)
                remember(log, self.dead_hosts.record_timeout, address)
                return None
            except Exception as e:
                log.info("{job}: QMTP connect to {address}:{port} failed: {error}", job=job.about(),
                         message_id=job.message_id, address=address, port=port, error=e)
                return None
            remember(log, self.dead_hosts.record_success, address)
            self._active.add(protocol)
            try:
                outcomes: list[QMTPOutcome] = yield protocol.finished
            finally:
                self._active.discard(protocol)
            return outcomes
        finally:
            message.close()

