# -*- test-case-name: tests.remote.test_channel -*-
"""
The remote delivery channel: pymta's qmail-remote (+ the qmail-rspawn mapping).

C{RemoteChannel(root, reader, resolver=None, reactor=None, is_own_address=None,
shuffle=None, idle_seconds=3.0)} implements L{pymta.interfaces.Channel}.  For every job it takes
the current controls from C{reader.current}, groups the recipients by
domain, and for each domain:

  1. plans the targets (L{pymta.remote.routes.TargetPlanner}: smtproutes,
     IP literals, MX with self check); the domain's MTA-STS policy
     (L{pymta.remote.mtasts}) may then keep only the MX hosts it lists and
     require verified TLS to them;
  2. tries them in order: addresses the dead-host memory
     (L{pymta.remote.tcpto}) marks as dead are skipped; a connect failure,
     a refused greeting or EHLO/HELO, or a connection lost before MAIL moves
     on to the next address; a connect timeout is remembered in tcpto;
  3. sends all recipients of the domain in one transaction
     (L{pymta.remote.client.SMTPClientProtocol}); recipients a server refuses
     with 452 after accepting others go in a further transaction;
  4. maps the reports to one L{DeliveryResult} per recipient the way
     qmail-rspawn does: an accepted recipient gets the message's result; a
     refused one C{D} (C{h}) or C{Z} (C{s}) with the server's text, followed
     by the message's text when that is not better.

A domain control/qmtproutes names goes over QMTP instead
(L{pymta.remote.qmtpdelivery}); one control/lmtproutes names goes to its
LMTP server (L{pymta.remote.lmtpdelivery}), whatever the other two say.

After a message, the connection is kept open for C{idle_seconds} (3 by
default) and the next message for the same address, port, helohost and TLS
policy goes over it (MAIL onwards); a kept connection the server has closed
meanwhile is replaced by a new one without any result being reported.

A relay route's options (L{pymta.remote.smtproutes}) choose implicit TLS
(C{smtps}), the login (C{auth=}, with the password from
L{pymta.remote.smarthostauth}) and certificate verification
(L{pymta.remote.tlspolicy.route_policy}); C{control/smarthostauth} is
checked, mode and owner too, when the channel is made and at each reload.

DANE (L{pymta.remote.dane}, on only with resolvers declared validating)
decides per MX host: TLS required and the certificate checked against the
TLSA records, or a deferral text for a host whose TLSA lookup failed; the
other MX hosts follow the domain's MTA-STS policy
(L{pymta.remote.tlsprecedence}).

When no address could be used: C{Z} "Sorry, I wasn't able to establish an
SMTP connection. (#4.4.1)", or the last server's refusal text when a server
refused us.  An optional STARTTLS handshake that fails is retried once on a
new plain connection to the same address.

C{deliver()} never errbacks; C{stop()} drops open connections (their
recipients are deferred) and fires when every delivery has reported.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable, Generator, cast

from twisted.internet import defer, error
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import split_address
from pymta.control import ControlError, ControlReader, Controls
from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS, DeliveryJob, DeliveryResult
from pymta.remote.dane import DanePlanner, HostDecisions
from pymta.remote.client import ACCEPTED, REFUSED, SessionOutcome, SMTPClientProtocol
from pymta.dns import DNSResolver, Resolver
from pymta.resolvers import configured_nameservers
from pymta.remote.localaddrs import own_addresses as discover_own_addresses
from pymta.remote.mtasts import MTASTS
from pymta.remote.mtastscache import cache_path
from pymta.remote.qmtpdelivery import QMTPDelivery
from pymta.remote.lmtpdelivery import LMTPDelivery
from pymta.remote.routes import RouteFailure, Target, TargetPlanner, is_self_address
from pymta.remote.smarthostauth import Credentials, CredentialsTable, check_file, daemon_account, smarthost_credentials
from pymta.remote.smtproutes import Route
from pymta.remote.deadhosts import remember, skipped_as_dead
from pymta.remote.tcpto import DeadHostMemory, tcpto_path
from pymta.remote.tlspolicy import TLSPolicy, TLSPolicyTable, route_policy, tls_destinations
from pymta.remote.tlsprecedence import combine
from pymta.remote.oneconnection import connect_quietly
from pymta.snapshotcache import PerSnapshot

__all__ = ["RemoteChannel", "TEXT_NO_CONNECTION", "combine_report"]

TEXT_NO_CONNECTION = "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
TEXT_NO_MESSAGE = "Unable to read message. (#4.3.0)\n"
TEXT_NO_CONTROLS = "Unable to read control files. (#4.3.0)\n"
TEXT_STOPPING = "Remote delivery is shutting down. (#4.3.0)\n"
TEXT_INTERNAL = "Remote delivery failed unexpectedly; see the log. (#4.3.0)\n"

TEXT_BAD_RECIPIENT = "Sorry, this address has characters SMTP cannot carry (CR, LF or NUL). (#5.1.3)\n"
TEXT_BAD_SENDER = "Sorry, the envelope sender has characters SMTP cannot carry (CR, LF or NUL). (#5.1.7)\n"

_RANK = {SUCCESS: 0, DEFERRAL: 1, FAILURE: 2}


def _transferable(address: str) -> bool:
    """False when an address would break (or inject) SMTP command lines."""
    return "\r" not in address and "\n" not in address and "\0" not in address

_CONNECT_FAILED = object()

log = Logger(namespace="pymta.remote")


def combine_report(report: tuple[str, str] | None, status: str, text: str) -> DeliveryResult:
    """qmail-rspawn's rule for one recipient's report and the message report."""
    if report is None or report[0] == ACCEPTED:
        return DeliveryResult(status, text)
    letter, own_text = report
    forced = FAILURE if letter == REFUSED else DEFERRAL
    if _RANK[status] >= _RANK[forced]:
        own_text += text
    return DeliveryResult(forced, own_text)



class _CachedOwnAddresses:
    """This machine's addresses, looked up again every C{ttl} seconds."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._value: frozenset[str] = frozenset()
        self._when = -ttl

    def __call__(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._when >= self.ttl:
            self._value = discover_own_addresses()
            self._when = now
        return self._value


class RemoteChannel:
    """
    Remote SMTP delivery (see the module docstring).

    @param root: the pymta root (the tcpto file is ROOT/queue/lock/tcpto).
    @param reader: controls are taken from C{reader.current} for each job.
    @param resolver: a L{pymta.dns.Resolver}; default a L{DNSResolver}
        (its thread pool is stopped by L{stop}).
    @param reactor: provides IReactorTCP and IReactorTime (default: global).
    @param is_own_address: tells whether an address is this machine's, for
        the MX self check (default: loopback, unspecified and the interfaces'
        addresses, refreshed every 5 minutes).
    @param shuffle: orders equal MX preferences (default random.shuffle).
    @param idle_seconds: how long a connection is kept open after a message
        for the next message to the same server (0: never reuse).
    """

    max_recipients = 100

    def __init__(
        self,
        root: str,
        reader: ControlReader,
        resolver: Resolver | None = None,
        reactor: Any = None,
        is_own_address: Callable[[str], bool] | None = None,
        shuffle: Callable[[list], None] | None = None,
        idle_seconds: float = 3.0,
        dane: DanePlanner | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.root = root
        self.reader = reader
        self.reactor = reactor
        self._own_resolver = resolver is None
        self.resolver: Resolver = resolver if resolver is not None else DNSResolver(reactor, nameservers=configured_nameservers(reader.current))
        if is_own_address is None:
            cached = _CachedOwnAddresses()

            def is_own_address(address: str) -> bool:
                return is_self_address(address, cached())

        self.planner = TargetPlanner(self.resolver, is_own_address, shuffle)
        self.dane = dane if dane is not None else DanePlanner.from_controls(reader.current, reactor)  # off by default
        self.dead_hosts = DeadHostMemory(tcpto_path(root), clock=reactor.seconds)
        # Reset as qmail-rspawn does at startup, but once the reactor runs: after the
        # drop from root, so the queue's owner does it without root's capabilities
        # (the systemd units leave root no CAP_DAC_OVERRIDE for the owner's files).
        when_running = getattr(reactor, "callWhenRunning", None)
        if callable(when_running):
            when_running(self._reset_dead_hosts)
        else:
            self._reset_dead_hosts()
        self._active: set[SMTPClientProtocol] = set()
        self._inflight: set[Deferred] = set()
        self._stopping = False
        self._tls_table: PerSnapshot[TLSPolicyTable] = PerSnapshot(tls_destinations)
        reader.add_check(self.tls_policies)  # a bad tlsdestinations stops the start, fails a reload
        self.mtasts = MTASTS.for_channel(self.resolver, reactor, cache_path(root))
        reader.add_check(self.mtasts.settings)  # so does a bad control/mtasts
        self._auth_table: PerSnapshot[CredentialsTable] = PerSnapshot(smarthost_credentials)
        account = daemon_account(root)
        reader.add_check(lambda controls: check_file(controls, account))  # mode and owner: before it is read
        reader.add_check(self.smarthost_credentials)
        self.qmtp = QMTPDelivery(self.planner, self.dead_hosts, reactor)  # the domains control/qmtproutes names
        reader.add_check(self.qmtp.routes)
        self.idle_seconds = idle_seconds
        self.lmtp = LMTPDelivery(self.planner, self.dead_hosts, reactor, idle_seconds)  # control/lmtproutes
        reader.add_check(self.lmtp.routes)
        self._idle: dict[tuple, list[SMTPClientProtocol]] = {}
        self._idle_timers: dict[SMTPClientProtocol, Any] = {}

    # -- Channel interface --------------------------------------------------

    def deliver(self, job: DeliveryJob) -> "Deferred[list[DeliveryResult]]":
        if self._stopping:
            return defer.succeed([DeliveryResult(DEFERRAL, TEXT_STOPPING) for _ in job.recipients])
        try:
            d = self._deliver(job)
        except Exception:
            d = defer.fail()

        def unexpected(f: Failure) -> list[DeliveryResult]:
            log.failure("{job}: remote delivery failed", f, job=job.about(), message_id=job.message_id)
            return [DeliveryResult(DEFERRAL, TEXT_INTERNAL) for _ in job.recipients]

        d.addErrback(unexpected)
        self._inflight.add(d)

        def done(result: list[DeliveryResult]) -> list[DeliveryResult]:
            self._inflight.discard(d)
            return result

        return d.addBoth(done)

    def _reset_dead_hosts(self) -> None:
        try:
            self.dead_hosts.clear()
        except OSError as e:
            log.warn("cannot reset {path}: {error}", path=self.dead_hosts.path, error=e)

    def start(self) -> None:
        """Accept deliveries again after L{stop} (the scheduler calls this when it starts)."""
        self._stopping = False
        self.lmtp.start()

    def stop(self) -> "Deferred[None]":
        self._stopping = True
        self.qmtp.stop()
        lmtp_closing = self.lmtp.stop()
        self.mtasts.stop()
        for protocol in list(self._active):
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        closing = lmtp_closing
        for key in list(self._idle):
            for protocol in list(self._idle.get(key, ())):
                self._unpark(key, protocol)
                closing.append(protocol.closed)
                protocol.quit()
        waiting = defer.DeferredList(list(self._inflight) + closing, consumeErrors=True)

        def stop_resolver(_: object) -> None:
            if self._own_resolver and isinstance(self.resolver, DNSResolver):
                self.resolver.stop()
            self.dane.stop()

        return waiting.addCallback(stop_resolver)

    # -- one job ------------------------------------------------------------

    def tls_policies(self, controls: Controls) -> TLSPolicyTable:
        """control/tlsdestinations of C{controls}, parsed once per snapshot (L{ControlError} on a bad line)."""
        return self._tls_table(controls)

    def smarthost_credentials(self, controls: Controls) -> CredentialsTable:
        """control/smarthostauth of C{controls}, parsed once per snapshot (L{ControlError} on a bad line)."""
        return self._auth_table(controls)

    def _deliver(self, job: DeliveryJob) -> "Deferred[list[DeliveryResult]]":
        controls = self.reader.current
        results: list[DeliveryResult | None] = [None] * len(job.recipients)
        groups: "OrderedDict[str, list[int]]" = OrderedDict()
        if not _transferable(job.sender):
            return defer.succeed([DeliveryResult(FAILURE, TEXT_BAD_SENDER) for _ in job.recipients])
        for index, recipient in enumerate(job.recipients):
            if not _transferable(recipient):
                results[index] = DeliveryResult(FAILURE, TEXT_BAD_RECIPIENT)
                continue
            groups.setdefault(split_address(recipient)[1].lower(), []).append(index)
        if len(groups) == 1 and all(r is None for r in results):
            domain = next(iter(groups))  # the usual job (the scheduler's are one domain each): its results as they are
            return self._deliver_domain(job, controls, domain, list(job.recipients))
        return self._deliver_groups(job, controls, groups, results)

    @defer.inlineCallbacks
    def _deliver_groups(
        self, job: DeliveryJob, controls: Controls, groups: "OrderedDict[str, list[int]]",
        results: list[DeliveryResult | None],
    ) -> Generator[Deferred[Any], Any, list[DeliveryResult]]:
        for domain, indices in groups.items():
            group_results = yield self._deliver_domain(job, controls, domain, [job.recipients[i] for i in indices])
            for i, result in zip(indices, group_results):
                results[i] = result
        return cast(list[DeliveryResult], results)  # every place filled above

    @defer.inlineCallbacks
    def _deliver_domain(
        self, job: DeliveryJob, controls: Controls, domain: str, recipients: list[str]
    ) -> Generator[Deferred[Any], Any, list[DeliveryResult]]:
        lmtp_route = self.lmtp.route_for(controls, domain)
        if lmtp_route is not None:
            return (yield self.lmtp.deliver(job, controls, domain, recipients, lmtp_route))
        qmtp_route = self.qmtp.route_for(controls, domain)
        if qmtp_route is not None:
            return (yield self.qmtp.deliver(job, controls, domain, recipients, qmtp_route))
        about = job.about()
        try:
            targets: list[Target] = yield self.planner.plan(domain, controls.smtproutes, about)
        except RouteFailure as failure:
            return [DeliveryResult(failure.status, failure.text + "\n") for _ in recipients]
        route = targets[0].route if targets else None
        try:
            policy = route_policy(self.tls_policies(controls).policy_for(domain), route)
            credentials = self.smarthost_credentials(controls).for_route(route)
        except (ControlError, OSError, LookupError) as e:
            log.error("{job}: tlsdestinations or smarthostauth unusable, deferring {domain}: {error}",
                      job=job.about(), message_id=job.message_id, domain=domain, error=str(e))
            return [DeliveryResult(DEFERRAL, TEXT_NO_CONTROLS) for _ in recipients]
        dane = yield self.dane.decide(domain, targets, policy, route, about)
        sts = yield self.mtasts.decide(domain, targets, policy, route, controls, job)
        plan = combine(targets, dane, sts)  # DANE per MX host, MTA-STS for the others (RFC 8461 section 2)
        if plan.refusal is not None:
            return [DeliveryResult(DEFERRAL, plan.refusal) for _ in recipients]
        targets = plan.targets
        results: list[DeliveryResult | None] = [None] * len(recipients)
        hosts: list[str | None] = [None] * len(recipients)  # the MX host each result came from
        pending = list(range(len(recipients)))
        while pending:
            batch = [recipients[i] for i in pending]
            outcome, used = yield self._try_targets(targets, job, controls, batch, plan.policy, route, credentials, dane)
            for i in pending:
                hosts[i] = used.host if used is not None else None
            if isinstance(outcome, str):
                for i in pending:
                    results[i] = DeliveryResult(DEFERRAL, outcome)
                break
            for position, i in enumerate(pending):
                if position not in outcome.retry:
                    result = combine_report(outcome.recipients.get(position), outcome.status, outcome.text)
                    if outcome.dsn_passed_on and result.status == SUCCESS:  # the next server reports from now on
                        result = DeliveryResult(result.status, result.text, notify_passed_on=True)
                    results[i] = result
            pending = [pending[position] for position in outcome.retry]
            targets = [used] + [t for t in targets if t != used]
        return plan.explain(cast(list[DeliveryResult], results), hosts)  # every place filled: none is pending

    @defer.inlineCallbacks
    def _try_targets(
        self,
        targets: list[Target],
        job: DeliveryJob,
        controls: Controls,
        recipients: list[str],
        policy: TLSPolicy,
        route: Route | None = None,
        credentials: Credentials | None = None,
        dane: HostDecisions | None = None,
    ) -> Generator[Deferred[Any], Any, tuple[SessionOutcome | str, Target | None]]:
        """
        The first usable server's outcome and its target; when none could be
        used, the last refusal's text and the target that gave it (None: none).
        """
        last_text, last_target = TEXT_NO_CONNECTION, None
        smtps = route is not None and route.smtps
        login = credentials.login if credentials is not None else None
        for target in targets:
            if self._stopping:
                return TEXT_STOPPING, None
            if skipped_as_dead(self.dead_hosts, log, job, target.address):
                continue
            host_dane = dane.get(target.host) if dane else None  # DANE's demand of this MX, or its deferral text
            if isinstance(host_dane, str):
                last_text, last_target = host_dane, target
                continue
            try:
                tls = host_dane.creator() if host_dane else TLSPolicyTable.creator(policy, target.host)
            except (OSError, ValueError) as e:
                log.error("{job}: TLS trust for {host} unusable: {error}", job=job.about(), message_id=job.message_id,
                          host=target.host, error=e)
                return f"Unable to load the TLS trust anchors for {target.host}. (#4.3.0)\n", None
            key = (target.address, target.port, target.host, controls.helohost, policy, smtps, login, host_dane,
                   tls is None)
            outcome = yield self._session(target, job, controls, recipients, tls,
                                          policy.required or smtps or host_dane is not None, key, smtps, credentials)
            if outcome is _CONNECT_FAILED:
                continue
            if outcome.tls_failed and not policy.required and not smtps:
                log.info("{job}: TLS with {address} failed; trying again without TLS", job=job.about(),
                         message_id=job.message_id, address=target.address)
                key = key[:-1] + (True,)
                outcome = yield self._session(target, job, controls, recipients, None, False, key)
                if outcome is _CONNECT_FAILED:
                    continue
            if outcome.next_host:
                last_text, last_target = outcome.text, target
                continue
            return outcome, target
        return last_text, last_target

    @defer.inlineCallbacks
    def _session(
        self,
        target: Target,
        job: DeliveryJob,
        controls: Controls,
        recipients: list[str],
        tls: Any,
        tls_required: bool,
        key: tuple,
        implicit_tls: bool = False,
        credentials: Credentials | None = None,
    ) -> Generator[Deferred[Any], Any, object]:  # a SessionOutcome, or _CONNECT_FAILED
        requests = job.dsn
        try:
            message = open(job.message_path, "rb")
        except OSError as e:
            log.error("{job}: cannot open message {path}: {error}", job=job.about(), message_id=job.message_id,
                      path=job.message_path, error=e)
            return SessionOutcome(DEFERRAL, TEXT_NO_MESSAGE)
        try:
            while self._idle.get(key):
                kept = self._idle[key][-1]
                self._unpark(key, kept)
                if not kept.connected:
                    continue
                self._active.add(kept)
                kept.dsn = requests
                try:
                    outcome = yield kept.start_transaction(job.sender, recipients, message)
                finally:
                    self._active.discard(kept)
                if not outcome.stale:
                    self._park(key, kept)
                    return outcome
                message.seek(0)
            protocol = SMTPClientProtocol(
                target.address,
                controls.helohost,
                job.sender,
                recipients,
                message,
                timeout=controls.timeoutremote,
                tls=tls,
                tls_required=tls_required,
                callLater=self.reactor.callLater,
                keep_open=self.idle_seconds > 0,
                implicit_tls=implicit_tls,
                credentials=credentials,
            )
            protocol.dsn = requests
            endpoint_class = TCP6ClientEndpoint if ":" in target.address else TCP4ClientEndpoint
            endpoint = endpoint_class(self.reactor, target.address, target.port, timeout=controls.timeoutconnect)
            try:
                yield connect_quietly(endpoint, protocol)
            except (error.TimeoutError, error.TCPTimedOutError):
                log.info("{job}: connect to {address}:{port} timed out", job=job.about(), message_id=job.message_id,
                         address=target.address, port=target.port)
                remember(log, self.dead_hosts.record_timeout, target.address)
                return _CONNECT_FAILED
            except Exception as e:
                log.info("{job}: connect to {address}:{port} failed: {error}", job=job.about(),
                         message_id=job.message_id, address=target.address, port=target.port, error=e)
                return _CONNECT_FAILED
            remember(log, self.dead_hosts.record_success, target.address)
            self._active.add(protocol)
            try:
                outcome = yield protocol.finished
            finally:
                self._active.discard(protocol)
            self._park(key, protocol)
            return outcome
        finally:
            message.close()

    # -- kept connections -----------------------------------------------------

    _MAX_IDLE = 100

    def _park(self, key: tuple, protocol: SMTPClientProtocol) -> None:
        """Keep an idle connection for C{idle_seconds}, or end it."""
        if not protocol.idle:
            return
        if self._stopping or sum(len(v) for v in self._idle.values()) >= self._MAX_IDLE:
            protocol.quit()
            return
        self._idle.setdefault(key, []).append(protocol)
        protocol.on_idle_lost = lambda p: self._unpark(key, p)

        def expire() -> None:
            self._idle_timers.pop(protocol, None)
            self._unpark(key, protocol)
            protocol.quit()

        self._idle_timers[protocol] = self.reactor.callLater(self.idle_seconds, expire)

    def _unpark(self, key: tuple, protocol: SMTPClientProtocol) -> None:
        protocol.on_idle_lost = None
        timer = self._idle_timers.pop(protocol, None)
        if timer is not None and timer.active():
            timer.cancel()
        kept = self._idle.get(key)
        if kept and protocol in kept:
            kept.remove(protocol)
            if not kept:
                del self._idle[key]

