# -*- test-case-name: tests.remote.test_mtasts -*-
"""
MTA-STS (RFC 8461) for remote delivery: which policy a domain has, and
what it does to a delivery (L{MTASTS.decide}, the remote channel's one call).

Discovery (L{PolicyDiscovery.policy}), for each delivery to a domain:

  1. ask TXT C{_mta-sts.DOMAIN} (pymta's resolver, at most C{txt_timeout}
     seconds; the resolver caches answers for their TTL).  When there is
     no valid record, or no answer, that is remembered for C{no_record_memo}
     seconds: most domains publish no policy, and their deliveries should
     not each pay a question (a new policy is then seen that much later);
  2. no valid record, or the lookup failed: the cached policy while it is
     fresh (less than C{max_age} old), else none;
  3. a record whose C{id} is the cached policy's, and that policy fresh:
     the cached policy, without a fetch;
  4. otherwise fetch the policy over HTTPS (L{pymta.remote.mtastsfetch});
     a good one replaces the cached one; a failed fetch keeps the cached
     policy while it is fresh, and is not tried again for the same record
     for C{retry_after} seconds (each delivery would wait for it).

One fetch at a time per domain: deliveries that ask meanwhile share it.
Nothing here errbacks: a problem is logged and means "no policy".

Precedence (docs/remote.md): MTA-STS applies only to MX delivery under
opportunistic TLS - a relay route of control/smtproutes or a
control/tlsdestinations entry for the domain (including C{*} and
C{.suffix} entries) come first and MTA-STS is not looked up.  DANE
decides per MX host: an MX host with DANE follows DANE, the others this
decision (L{pymta.remote.tlsprecedence}).  C{control/mtasts} turns it off
(L{pymta.remote.mtastssettings}).
"""

from __future__ import annotations

from typing import Any, Callable, Generator, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pymta.control import ControlError, Controls
from pymta.dns import DNSError, Resolver, ip_literal
from pymta.interfaces import DeliveryJob
from pymta.remote.mtastsapply import STSDecision, apply_policy, unchanged
from pymta.remote.mtastscache import CachedPolicy, PolicyCache
from pymta.remote.mtastsfetch import FetchError, PolicyFetcher
from pymta.remote.mtastspolicy import PolicyError, Policy, parse_policy, record_id
from pymta.remote.mtastssettings import MTASTSSettings, mtasts_settings
from pymta.remote.smtproutes import Route
from pymta.remote.routes import Target
from pymta.remote.tlspolicy import OPPORTUNISTIC, TLSPolicy
from pymta.snapshotcache import PerSnapshot

__all__ = ["MTASTS", "PolicyDiscovery", "TXT_TIMEOUT", "RETRY_AFTER"]

TXT_TIMEOUT = 10.0
RETRY_AFTER = 300.0
NO_RECORD_MEMO = 300.0
MEMO_ENTRIES = 10000

log = Logger(namespace="pymta.remote")


class PolicyDiscovery:
    """
    Finds domains' policies (see the module docstring).

    @param fetch: C{fetch(domain, ca_file)} -> Deferred of the policy body
        (L{PolicyFetcher.fetch}; tests pass fakes).
    @param clock: seconds since the epoch (the reactor's C{seconds}).
    @param reactor: IReactorTime, for the TXT lookup's timeout.
    """

    def __init__(self, resolver: Resolver, fetch: Callable[[str, str | None], "Deferred[bytes]"],
                 cache: PolicyCache, reactor: Any, txt_timeout: float = TXT_TIMEOUT,
                 retry_after: float = RETRY_AFTER, no_record_memo: float = NO_RECORD_MEMO) -> None:
        self.resolver = resolver
        self.fetch = fetch
        self.cache = cache
        self.reactor = reactor
        self.txt_timeout = txt_timeout
        self.retry_after = retry_after
        self.no_record_memo = no_record_memo
        self._no_record: dict[str, float] = {}  # domain -> no TXT question before
        self._failed: dict[str, tuple[str, float]] = {}  # domain -> (record id, no new fetch before)
        self._running: dict[str, Deferred[Policy | None]] = {}

    def policy(self, domain: str, ca_file: str | None = None) -> "Deferred[Policy | None]":
        """C{domain}'s policy now, or None; never fails."""
        running = self._running.get(domain)
        if running is None:
            running = self._running[domain] = self._discover(domain, ca_file)

            def done(result: Any) -> Any:
                self._running.pop(domain, None)
                return result

            running.addBoth(done)
        if running.called:
            return defer.succeed(cast("Policy | None", running.result))
        mine: Deferred[Policy | None] = Deferred()

        def share(result: Any) -> Any:
            mine.callback(result)
            return result

        running.addCallback(share)
        return mine

    def stop(self) -> None:
        """Give up the lookups and fetches in progress (their deliveries see no policy); write the cache."""
        for running in list(self._running.values()):
            running.cancel()
        self.cache.flush()

    @defer.inlineCallbacks
    def _discover(self, domain: str, ca_file: str | None) -> Generator[Deferred[Any], Any, Policy | None]:
        try:
            return (yield self._find(domain, ca_file))
        except defer.CancelledError:
            return None
        except Exception:
            log.failure("MTA-STS lookup for {domain} failed unexpectedly", domain=domain)
            return None

    @defer.inlineCallbacks
    def _find(self, domain: str, ca_file: str | None) -> Generator[Deferred[Any], Any, Policy | None]:
        cached = self.cache.get(domain)
        now = self.reactor.seconds()
        usable = cached.policy if cached is not None and cached.fresh(now) else None
        if now < self._no_record.get(domain, now):
            return usable
        self._no_record.pop(domain, None)
        name = f"_mta-sts.{domain}"
        try:
            records = yield self.resolver.txt(name).addTimeout(self.txt_timeout, self.reactor)
        except (DNSError, defer.TimeoutError) as e:
            records = None
            if cached is not None:
                log.info("MTA-STS: TXT lookup of {name} failed ({error}); the cached policy stands",
                         name=name, error=getattr(e, "reason", "timed out"))
        found = record_id(records) if records else None
        if found is None:
            if len(self._no_record) >= MEMO_ENTRIES:
                self._no_record.clear()
            self._no_record[domain] = now + self.no_record_memo
            return usable
        if cached is not None and cached.record_id == found and usable is not None:
            return usable
        failed = self._failed.get(domain)
        if failed is not None and failed[0] == found and now < failed[1]:
            return usable
        try:
            body = yield self.fetch(domain, ca_file)
            policy = parse_policy(body)
        except (FetchError, PolicyError) as e:
            if len(self._failed) >= MEMO_ENTRIES:
                self._failed.clear()
            self._failed[domain] = (found, now + self.retry_after)
            log.warn("MTA-STS policy of {domain} (TXT id {id}) unusable: {error}; {fallback}", domain=domain,
                     id=found, error=str(e), fallback="the cached policy stands" if usable else "no policy applies")
            return usable
        self._failed.pop(domain, None)
        self.cache.put(domain, CachedPolicy(found, self.reactor.seconds(), policy))
        log.info("MTA-STS policy of {domain} (TXT id {id}): mode {mode}, max_age {max_age}, mx {mx}",
                 domain=domain, id=found, mode=policy.mode, max_age=policy.max_age, mx=" ".join(policy.mx))
        return policy


class MTASTS:
    """
    MTA-STS in the remote channel: L{settings} (control/mtasts, parsed once
    per snapshot; the channel registers it as a control check) and L{decide}.
    """

    def __init__(self, discovery: PolicyDiscovery) -> None:
        self.discovery = discovery
        self._settings: PerSnapshot[MTASTSSettings] = PerSnapshot(mtasts_settings)

    @classmethod
    def for_channel(cls, resolver: Resolver, reactor: Any, cache_file: str | None) -> "MTASTS":
        """The real thing: HTTPS fetches through C{resolver}, the cache in C{cache_file}."""
        fetcher = PolicyFetcher(reactor, resolver)
        cache = PolicyCache(cache_file, reactor.seconds, call_later=reactor.callLater)  # written in batches
        return cls(PolicyDiscovery(resolver, fetcher.fetch, cache, reactor))

    def settings(self, controls: Controls) -> MTASTSSettings:
        """control/mtasts of C{controls} (L{ControlError} on a bad line)."""
        return self._settings(controls)

    def stop(self) -> None:
        self.discovery.stop()

    def decide(self, domain: str, targets: list[Target], policy: TLSPolicy, route: Route | None,
               controls: Controls, job: DeliveryJob | None = None) -> "Deferred[STSDecision]":
        """
        The targets and TLS policy for C{domain} under its MTA-STS policy,
        if one applies; never fails.  C{job} is named in the log lines.
        """
        try:
            settings = self.settings(controls)
        except ControlError as e:  # checked at start and reload: only a table built some other way
            log.error("{about}: control/mtasts unusable, MTA-STS off: {error}", about=job.about() if job else domain,
                      message_id=job.message_id if job is not None else None, error=str(e))
            return defer.succeed(unchanged(targets, policy))
        if (not settings.enabled or policy.mode != OPPORTUNISTIC or not targets
                or (route is not None and route.relay is not None) or ip_literal(domain) is not None):
            return defer.succeed(unchanged(targets, policy))  # at once: no policy can apply
        return self._decide(domain, targets, policy, settings, job)

    @defer.inlineCallbacks
    def _decide(self, domain: str, targets: list[Target], policy: TLSPolicy, settings: MTASTSSettings,
                job: DeliveryJob | None) -> Generator[Deferred[Any], Any, STSDecision]:
        about = job.about() if job is not None else domain
        message_id = job.message_id if job is not None else None
        sts = yield self.discovery.policy(domain, settings.ca_file)
        decision = apply_policy(domain, sts, targets, policy, settings.ca_file)
        for note in decision.notes:
            log.info("{about}: {note}", about=about, message_id=message_id, note=note)
        return decision
