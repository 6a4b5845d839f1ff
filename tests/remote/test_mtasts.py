"""
Tests for pymta.remote.mtasts: policy discovery (TXT, fetch, cache, refresh)
with a fake resolver, a fake fetcher and task.Clock; and when the channel
asks for MTA-STS at all (precedence).
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pymta.dns import DNSTemporaryError
from pymta.remote.mtasts import MTASTS, PolicyDiscovery
from pymta.remote.mtastsapply import STSDecision
from pymta.remote.mtastscache import PolicyCache
from pymta.remote.mtastsfetch import FetchError
from pymta.remote.mtastspolicy import ENFORCE, TESTING, Policy
from pymta.remote.routes import Target
from pymta.remote.smtproutes import Route
from pymta.remote.tlspolicy import OFF, OPPORTUNISTIC, VERIFY, TLSPolicy
from tests.controlfiles import controls_from
from tests.remote.fakes import FakeResolver

NAME = "_mta-sts.example.test"
BODY = b"version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 3600\n"
POLICY = Policy(ENFORCE, 3600, ("mx.example.test",))


class FakeFetcher:
    """Answers fetches with C{body} (bytes, or an exception to fail with), or leaves them pending (None)."""

    def __init__(self, body: bytes | Exception | None = BODY) -> None:
        self.body = body
        self.calls: list[tuple[str, str | None]] = []
        self.pending: list[Deferred[bytes]] = []

    def fetch(self, domain: str, ca_file: str | None) -> "Deferred[bytes]":
        self.calls.append((domain, ca_file))
        if self.body is None:
            d: Deferred[bytes] = Deferred()
            self.pending.append(d)
            return d
        if isinstance(self.body, Exception):
            return defer.fail(self.body)
        return defer.succeed(self.body)


class DiscoveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.resolver = FakeResolver(txt={NAME: ["v=STSv1; id=one"]})
        self.fetcher = FakeFetcher()
        self.path = os.path.abspath(self.mktemp())
        self.discovery = self.make()

    def make(self) -> PolicyDiscovery:
        cache = PolicyCache(self.path, self.clock.seconds)
        return PolicyDiscovery(self.resolver, self.fetcher.fetch, cache, self.clock)

    def policy(self, discovery: PolicyDiscovery | None = None) -> Policy | None:
        return self.successResultOf((discovery or self.discovery).policy("example.test", "/ca.pem"))

    def test_fetched_once_then_cached(self) -> None:
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(self.fetcher.calls, [("example.test", "/ca.pem")])
        self.clock.advance(3000)
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(len(self.fetcher.calls), 1)
        # a restart keeps it: the new discovery fetches nothing while the id is unchanged
        self.assertEqual(self.policy(self.make()), POLICY)
        self.assertEqual(len(self.fetcher.calls), 1)

    def test_new_id_or_expiry_fetches_again(self) -> None:
        self.policy()
        self.resolver.txt_table[NAME] = ["v=STSv1; id=two"]
        self.fetcher.body = BODY.replace(b"enforce", b"testing")
        self.assertEqual(self.policy(), Policy(TESTING, 3600, ("mx.example.test",)))
        self.assertEqual(len(self.fetcher.calls), 2)
        self.clock.advance(3600)  # max_age over: fetched again although the id is the same
        self.fetcher.body = BODY
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(len(self.fetcher.calls), 3)

    def test_failed_refresh_keeps_the_cached_policy(self) -> None:
        self.policy()
        self.resolver.txt_table[NAME] = ["v=STSv1; id=two"]
        self.fetcher.body = FetchError("HTTP status 500 (not 200)")
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(len(self.fetcher.calls), 2)
        self.assertEqual(self.policy(), POLICY)  # not tried again at once
        self.assertEqual(len(self.fetcher.calls), 2)
        self.clock.advance(301)
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(len(self.fetcher.calls), 3)
        self.clock.advance(3600)  # expired, and still no fetch works: no policy
        self.assertIsNone(self.policy())

    def test_record_gone_or_dns_failing_keeps_the_cached_policy(self) -> None:
        self.policy()
        del self.resolver.txt_table[NAME]
        self.assertEqual(self.policy(), POLICY)
        self.clock.advance(301)  # past the memory of "no record"
        self.resolver.txt_table[NAME] = DNSTemporaryError
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(self.resolver.queries.count(("TXT", NAME)), 3)
        self.clock.advance(3600)
        self.assertIsNone(self.policy())
        self.assertEqual(len(self.fetcher.calls), 1)

    def test_no_record_no_policy(self) -> None:
        self.resolver.txt_table[NAME] = ["v=spf1 -all"]
        self.assertIsNone(self.policy())
        self.clock.advance(301)
        self.resolver.txt_table[NAME] = ["v=STSv1; id=one"]
        self.fetcher.body = b"version: STSv1\nmode: enforce\nmax_age: 5\n"  # no mx: unusable
        self.assertIsNone(self.policy())
        self.assertFalse(os.path.exists(self.path))

    def test_no_record_remembered_for_a_while(self) -> None:
        del self.resolver.txt_table[NAME]
        self.assertIsNone(self.policy())
        self.clock.advance(299)
        self.resolver.txt_table[NAME] = ["v=STSv1; id=one"]
        self.assertIsNone(self.policy())  # no question asked: the domain had no record 299 s ago
        self.assertEqual(self.resolver.queries, [("TXT", NAME)])
        self.clock.advance(1)
        self.assertEqual(self.policy(), POLICY)
        self.assertEqual(self.resolver.queries, [("TXT", NAME)] * 2)

    def test_txt_lookup_bounded_in_time(self) -> None:
        slow: Deferred[list[str]] = Deferred()
        self.resolver.txt = lambda name: slow  # type: ignore[method-assign]  # a lookup that never answers
        d = self.discovery.policy("example.test")
        self.assertNoResult(d)
        self.clock.advance(10)
        self.assertIsNone(self.successResultOf(d))

    def test_concurrent_deliveries_share_one_fetch(self) -> None:
        self.fetcher.body = None
        first = self.discovery.policy("example.test")
        second = self.discovery.policy("example.test")
        self.assertEqual(len(self.fetcher.calls), 1)
        self.fetcher.pending[0].callback(BODY)
        self.assertEqual(self.successResultOf(first), POLICY)
        self.assertEqual(self.successResultOf(second), POLICY)

    def test_stop_writes_the_batched_cache(self) -> None:
        cache = PolicyCache(self.path, self.clock.seconds, call_later=self.clock.callLater)
        discovery = PolicyDiscovery(self.resolver, self.fetcher.fetch, cache, self.clock)
        self.assertEqual(self.policy(discovery), POLICY)
        self.assertFalse(os.path.exists(self.path))  # waiting for the batch
        discovery.stop()
        self.assertEqual(self.policy(self.make()), POLICY)  # a restart finds it without a fetch
        self.assertEqual(len(self.fetcher.calls), 1)

    def test_stop_gives_up_pending_fetches(self) -> None:
        self.fetcher.body = None
        d = self.discovery.policy("example.test")
        self.discovery.stop()
        self.assertIsNone(self.successResultOf(d))


class DecideTests(SynchronousTestCase):
    """When MTA-STS is asked at all: MX delivery under opportunistic TLS, control/mtasts not off."""

    targets = [Target("192.0.2.1", 25, "mx.bad.test", 10)]

    def setUp(self) -> None:
        self.clock = Clock()
        self.resolver = FakeResolver(txt={NAME: ["v=STSv1; id=one"]})
        self.fetcher = FakeFetcher()
        discovery = PolicyDiscovery(self.resolver, self.fetcher.fetch, PolicyCache(None, self.clock.seconds), self.clock)
        self.mtasts = MTASTS(discovery)

    def controls(self, mtasts: str | None = None) -> object:
        return controls_from(self, mtasts=mtasts)

    def decide(self, policy: TLSPolicy, route: Route | None = None, controls: object = None, domain: str = "example.test") -> STSDecision:
        return self.successResultOf(self.mtasts.decide(domain, self.targets, policy, route, controls or self.controls()))

    def test_applies_to_mx_delivery(self) -> None:
        decision = self.decide(TLSPolicy(OPPORTUNISTIC))
        self.assertEqual(decision.refusal, "MTA-STS policy of example.test: mx.bad.test is not in the policy. (#4.7.5)\n")
        # smtproutes ":PORT" (MX as usual, another port) is MX delivery too
        self.assertIsNotNone(self.decide(TLSPolicy(OPPORTUNISTIC), Route(None, 2525)).refusal)

    def test_precedence(self) -> None:
        cases = [
            (TLSPolicy(VERIFY, None), None, None),  # a tlsdestinations entry (or DANE) decided already
            (TLSPolicy(OFF), None, None),
            (TLSPolicy(OPPORTUNISTIC), Route("relay.test", 25), None),  # a relay route
            (TLSPolicy(OPPORTUNISTIC), None, "off\n"),  # control/mtasts off
        ]
        for policy, route, mtasts in cases:
            decision = self.decide(policy, route, self.controls(mtasts))
            self.assertEqual((decision.targets, decision.policy, decision.refusal), (self.targets, policy, None))
        self.assertIsNone(self.decide(TLSPolicy(OPPORTUNISTIC), domain="[192.0.2.1]").refusal)
        self.assertEqual(self.resolver.queries, [])
        self.assertEqual(self.fetcher.calls, [])
