# -*- test-case-name: tests.remote.test_lmtpdelivery -*-
"""
Delivery over LMTP, for the domains control/lmtproutes names
(L{pymta.remote.lmtproutes}); the remote channel
(L{pymta.remote.channel.RemoteChannel}) hands them here, ahead of
qmtproutes and smtproutes.

The server is a unix socket, or a TCP host whose addresses are tried in
order (L{pymta.remote.routes.TargetPlanner.plan_route}: no MX, no self
check; addresses the dead-host memory marks as dead are skipped, a
connect timeout is remembered).  A connection that cannot be made, or
whose greeting or LHLO fails, moves on to the next address; the first
session carries the message (L{pymta.remote.lmtpclient}) and each
recipient gets its own result.  A transaction has one recipient unless
the route's C{recipients=N} allows more: Dovecot writes C{Delivered-To:}
(and the C{for} of its Received line) only into a transaction with one
recipient, and qmail's local delivery writes Delivered-To into each copy.  None at all: C{Z} "Sorry, I wasn't able
to establish an LMTP connection. (#4.4.1)".

Each route has its own limit (the line's C{concurrency=N}): a delivery
waits for one of the route's slots before it takes or opens a connection,
so no more than N connections to the server carry mail at once (the
deliveries waiting hold remote-channel slots: concurrencyremote bounds
them all).  After a transaction the connection is kept for
C{idle_seconds} (at most N per route) and the route's next delivery
sends C{RSET} and its message over it; one gone meanwhile is replaced by
a new connection without any result being reported.
"""

from __future__ import annotations

from typing import IO, Any, Generator

from twisted.internet import defer, error
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from pymta.control import Controls
from pymta.interfaces import DEFERRAL, DeliveryJob, DeliveryResult
from pymta.remote.lmtpclient import LMTPClientProtocol, LMTPOutcome
from pymta.remote.lmtproutes import LMTPRoute, LMTPRoutes, lmtp_routes
from pymta.remote.routes import RouteFailure, TargetPlanner
from pymta.remote.smtproutes import Route
from pymta.remote.deadhosts import remember, skipped_as_dead
from pymta.remote.tcpto import DeadHostMemory
from pymta.snapshotcache import PerSnapshot

__all__ = ["LMTPDelivery", "TEXT_NO_LMTP_CONNECTION"]

TEXT_NO_LMTP_CONNECTION = "Sorry, I wasn't able to establish an LMTP connection. (#4.4.1)\n"
TEXT_NO_MESSAGE = "Unable to read message. (#4.3.0)\n"
TEXT_STOPPING = "Remote delivery is shutting down. (#4.3.0)\n"

log = Logger(namespace="pymta.remote")


class _OneConnection(Factory):
    noisy = False

    def __init__(self, protocol: LMTPClientProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> LMTPClientProtocol:
        return self._protocol


class _RoutePool:
    """One route's slots and its kept connections (each under the key of the address it reaches)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots = DeferredSemaphore(limit)
        self.idle: list[tuple[tuple, LMTPClientProtocol, Any]] = []  # (key, connection, expiry timer)

    def take(self, key: tuple) -> LMTPClientProtocol | None:
        for entry in self.idle:
            if entry[0] == key:
                self.drop(entry[1])
                return entry[1]
        return None

    def drop(self, protocol: LMTPClientProtocol) -> None:
        for entry in list(self.idle):
            if entry[1] is protocol:
                self.idle.remove(entry)
                protocol.on_idle_lost = None
                if entry[2].active():
                    entry[2].cancel()


class LMTPDelivery:
    """LMTP's part of the remote channel: the routes table per snapshot, the route pools, the deliveries."""

    def __init__(self, planner: TargetPlanner, dead_hosts: DeadHostMemory, reactor: Any,
                 idle_seconds: float = 3.0) -> None:
        self.planner = planner
        self.dead_hosts = dead_hosts
        self.reactor = reactor
        self.idle_seconds = idle_seconds
        self._table: PerSnapshot[LMTPRoutes] = PerSnapshot(lmtp_routes)
        self._pools: dict[LMTPRoute, _RoutePool] = {}
        self._active: set[LMTPClientProtocol] = set()
        self._stopping = False

    def routes(self, controls: Controls) -> LMTPRoutes:
        """control/lmtproutes of C{controls}, parsed once per snapshot (L{pymta.control.ControlError} on a bad line)."""
        return self._table(controls)

    def route_for(self, controls: Controls, domain: str) -> LMTPRoute | None:
        """The LMTP route of C{domain}, or None (QMTP or SMTP as usual)."""
        return self.routes(controls).route_for(domain)

    def start(self) -> None:
        self._stopping = False

    def stop(self) -> list["Deferred[None]"]:
        """Drop the connections in flight (their recipients are deferred), end the kept ones; their closings."""
        self._stopping = True
        closing = []
        for protocol in list(self._active):
            closing.append(protocol.closed)
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        for pool in self._pools.values():
            for _, protocol, _ in list(pool.idle):
                pool.drop(protocol)
                closing.append(protocol.closed)
                protocol.quit()
        return closing

    # -- one delivery ---------------------------------------------------------

    @defer.inlineCallbacks
    def deliver(
        self, job: DeliveryJob, controls: Controls, domain: str, recipients: list[str], route: LMTPRoute
    ) -> Generator[Deferred[Any], Any, list[DeliveryResult]]:
        """One result per recipient, in order."""
        if route.path is not None:
            targets = [route.path]
        else:
            try:
                planned = yield self.planner.plan_route(domain, Route(route.host, route.port))
            except RouteFailure as failure:
                return [DeliveryResult(failure.status, failure.text + "\n") for _ in recipients]
            targets = [t.address for t in planned]
        pool = self._pools.get(route)
        if pool is None:
            pool = self._pools[route] = _RoutePool(route.concurrency)
        yield pool.slots.acquire()
        try:
            if self._stopping:
                return [DeliveryResult(DEFERRAL, TEXT_STOPPING) for _ in recipients]
            try:
                message = open(job.message_path, "rb")
            except OSError as e:
                log.error("{job}: cannot open message {path}: {error}", job=job.about(), message_id=job.message_id,
                          path=job.message_path, error=e)
                return [DeliveryResult(DEFERRAL, TEXT_NO_MESSAGE) for _ in recipients]
            results: list[DeliveryResult] = []
            with message:
                for start in range(0, len(recipients), route.recipients):
                    batch = recipients[start:start + route.recipients]
                    outcome = yield self._over_targets(pool, route, targets, job, controls, batch, message)
                    if isinstance(outcome, str):  # no server took the session: the same for the rest
                        return results + [DeliveryResult(DEFERRAL, outcome) for _ in recipients[start:]]
                    results += outcome.results
            return results
        finally:
            pool.slots.release()

    @defer.inlineCallbacks
    def _over_targets(
        self, pool: _RoutePool, route: LMTPRoute, targets: list[str], job: DeliveryJob, controls: Controls,
        recipients: list[str], message: IO[bytes],
    ) -> Generator[Deferred[Any], Any, LMTPOutcome | str]:
        """The first session's outcome, or the deferral text when no target took one."""
        text = TEXT_NO_LMTP_CONNECTION
        for target in targets:
            if route.path is None and skipped_as_dead(self.dead_hosts, log, job, target):
                continue
            outcome = yield self._session(pool, route, target, job, controls, recipients, message)
            if isinstance(outcome, LMTPOutcome):
                return outcome
            text = outcome or text
        return text

    @defer.inlineCallbacks
    def _session(
        self, pool: _RoutePool, route: LMTPRoute, target: str, job: DeliveryJob, controls: Controls,
        recipients: list[str], message: IO[bytes],
    ) -> Generator[Deferred[Any], Any, LMTPOutcome | str | None]:
        """The outcome of a kept or new connection to C{target}; a text or None (no connection) to try the next."""
        key = (target, route.port, controls.helohost)
        while (kept := pool.take(key)) is not None:
            if not kept.connected:
                continue
            message.seek(0)
            outcome = yield self._transaction(kept, job, recipients, message, reset=True)
            if not outcome.stale:
                self._park(pool, key, kept)
                return outcome
        protocol = LMTPClientProtocol(target, controls.helohost, controls.timeoutremote,
                                      callLater=self.reactor.callLater)
        where = target if route.path is not None else f"{target}:{route.port}"
        try:
            yield self._endpoint(route, target, controls).connect(_OneConnection(protocol))
        except (error.TimeoutError, error.TCPTimedOutError):
            log.info("{job}: LMTP connect to {where} timed out", job=job.about(), message_id=job.message_id,
                     where=where)
            if route.path is None:
                remember(log, self.dead_hosts.record_timeout, target)
            return None
        except Exception as e:
            log.info("{job}: LMTP connect to {where} failed: {error}", job=job.about(), message_id=job.message_id,
                     where=where, error=e)
            return None
        if route.path is None:
            remember(log, self.dead_hosts.record_success, target)
        self._active.add(protocol)
        try:
            refused = yield protocol.ready
        finally:
            self._active.discard(protocol)
        if refused is not None:
            log.info("{job}: LMTP server {where} refused the session: {text}", job=job.about(),
                     message_id=job.message_id, where=where, text=refused.strip())
            return refused
        message.seek(0)
        outcome = yield self._transaction(protocol, job, recipients, message, reset=False)
        self._park(pool, key, protocol)
        return outcome

    def _endpoint(self, route: LMTPRoute, target: str, controls: Controls) -> Any:
        if route.path is not None:
            return UNIXClientEndpoint(self.reactor, route.path, timeout=controls.timeoutconnect)
        endpoint_class = TCP6ClientEndpoint if ":" in target else TCP4ClientEndpoint
        return endpoint_class(self.reactor, target, route.port, timeout=controls.timeoutconnect)

    @defer.inlineCallbacks
    def _transaction(self, protocol: LMTPClientProtocol, job: DeliveryJob, recipients: list[str],
                     message: IO[bytes], reset: bool) -> Generator[Deferred[Any], Any, LMTPOutcome]:
        self._active.add(protocol)
        try:
            return (yield protocol.transaction(job.sender, recipients, message, reset=reset))
        finally:
            self._active.discard(protocol)

    # -- kept connections -----------------------------------------------------

    def _park(self, pool: _RoutePool, key: tuple, protocol: LMTPClientProtocol) -> None:
        """Keep an idle connection for C{idle_seconds}, or end it."""
        if not protocol.idle:
            return
        if self._stopping or self.idle_seconds <= 0 or len(pool.idle) >= pool.limit:
            protocol.quit()
            return

        def expire() -> None:
            pool.drop(protocol)
            protocol.quit()

        pool.idle.append((key, protocol, self.reactor.callLater(self.idle_seconds, expire)))
        protocol.on_idle_lost = pool.drop

