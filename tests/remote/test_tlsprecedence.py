"""
Tests for pymta.remote.tlsprecedence: DANE per MX host, MTA-STS for the
other hosts (RFC 8461 section 2), pure; and the remote channel applying it,
with fakes and with a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, SUCCESS, DeliveryResult
from pymta.remote.channel import RemoteChannel
from pymta.remote.dane import DanePlanner
from pymta.remote.danedns import SecureAnswer
from pymta.remote.danematch import DANE_EE
from pymta.remote.danetls import DaneTLS
from pymta.remote.mtastsapply import apply_policy, unchanged
from pymta.remote.mtastspolicy import ENFORCE, TESTING, Policy
from pymta.remote.routes import Target
from pymta.remote.tlspolicy import OPPORTUNISTIC, VERIFY, TLSPolicy
from pymta.remote.tlsprecedence import combine
from pymta.dns import DNSTemporaryError
from tests.remote.danecerts import issue, server_options
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import ScriptedServerFactory, listen
from tests.remote.test_dane import FakeSecureResolver

DOMAIN = "example.test"
OPEN = TLSPolicy(OPPORTUNISTIC)
MX1 = Target("192.0.2.1", 25, "mx1.example.test", 10)
MX2 = Target("192.0.2.2", 25, "mx2.example.test", 20)
MX3 = Target("192.0.2.3", 25, "mx3.example.test", 30)
MX4 = Target("192.0.2.4", 25, "mx4.example.test", 40)
DANE1 = DaneTLS(MX1.host, (), (MX1.host, DOMAIN))
TLSA_FAILED = "The TLSA lookup of _25._tcp.mx4.example.test failed: SERVFAIL. (#4.7.5)\n"


def enforce(*hosts: str, mode: str = ENFORCE) -> Policy:
    return Policy(mode, 86400, hosts)


class CombineTests(unittest.SynchronousTestCase):
    def test_dane_per_host_mtasts_for_the_others(self) -> None:
        targets = [MX1, MX2, MX3, MX4]
        sts = apply_policy(DOMAIN, enforce(MX2.host, MX4.host), targets, OPEN, None)
        plan = combine(targets, {MX1.host: DANE1, MX4.host: TLSA_FAILED}, sts)
        # mx1: DANE, although the policy does not list it; mx2: listed; mx3: not listed, no DANE: not tried;
        # mx4: listed, its TLSA lookup failed: kept, and the channel skips it with DANE's text
        self.assertEqual(plan.targets, [MX1, MX2, MX4])
        self.assertEqual(plan.policy, TLSPolicy(VERIFY))
        self.assertIsNone(plan.refusal)

    def test_no_listed_mx_defers_only_without_dane(self) -> None:
        sts = apply_policy(DOMAIN, enforce("other.test"), [MX1, MX2], OPEN, None)
        self.assertIsNotNone(sts.refusal)
        plan = combine([MX1, MX2], {MX1.host: DANE1}, sts)
        self.assertEqual((plan.targets, plan.refusal), ([MX1], None))
        plan = combine([MX1, MX2], {MX1.host: "The TLSA lookup of ... failed. (#4.7.5)\n"}, sts)
        self.assertEqual((plan.targets, plan.refusal), ([], sts.refusal))

    def test_without_mtasts_nothing_is_filtered(self) -> None:
        for sts in (unchanged([MX1, MX2], OPEN), apply_policy(DOMAIN, enforce(MX1.host, mode=TESTING), [MX1, MX2], OPEN,
                                                               None)):
            plan = combine([MX1, MX2], {MX2.host: TLSA_FAILED}, sts)
            self.assertEqual((plan.targets, plan.policy, plan.refusal), ([MX1, MX2], OPEN, None))

    def test_explain_names_mtasts_only_for_its_hosts(self) -> None:
        sts = apply_policy(DOMAIN, enforce(MX2.host), [MX1, MX2], OPEN, None)
        plan = combine([MX1, MX2], {MX1.host: DANE1}, sts)
        dane_text = "TLS session with 192.0.2.1 failed: TLSA records of mx1.example.test do not match. (#4.7.5)\n"
        sts_text = "TLS session with 192.0.2.2 failed: certificate verify failed. (#4.7.5)\n"
        results = [DeliveryResult(DEFERRAL, dane_text), DeliveryResult(DEFERRAL, sts_text),
                   DeliveryResult(SUCCESS, "192.0.2.2 accepted message.\n")]
        explained = plan.explain(results, [MX1.host, MX2.host, MX2.host])
        self.assertEqual(explained[0], results[0])
        self.assertEqual(explained[1].text, f"MTA-STS policy of {DOMAIN} requires TLS with a valid certificate: "
                                            + sts_text)
        self.assertEqual(explained[2], results[2])


class _FakeDane:
    """mx1's TLSA lookup failed (a deferral text); mx2 has no TLSA record (no entry)."""

    def decide(self, domain: str, targets: Any, policy: Any, route: Any, about: str = "") -> defer.Deferred:
        return defer.succeed({MX1.host: "The TLSA lookup of _25._tcp.mx1.example.test failed. (#4.7.5)\n"})

    def stop(self) -> None:
        pass


class _FakeSTS:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def decide(self, domain: str, targets: Any, policy: Any, route: Any, controls: Any, job: Any = None) -> defer.Deferred:
        self.asked.append(domain)
        return defer.succeed(apply_policy(domain, enforce(MX1.host, MX2.host), targets, policy, None))

    def stop(self) -> None:
        pass


class ChannelTests(unittest.TestCase):
    timeout = 30

    def test_one_dane_answer_leaves_mtasts_on_for_the_other_hosts(self) -> None:
        root = make_root(self.mktemp(), {})
        clock = task.Clock()
        clock.callWhenRunning = lambda f, *a: f(*a)  # type: ignore[attr-defined]  # what the channel calls at start
        channel = RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=clock,
                                is_own_address=lambda a: False, dane=_FakeDane())  # type: ignore[arg-type]  # a fake
        sts = channel.mtasts = _FakeSTS()  # type: ignore[assignment]  # a fake with the methods used
        channel.planner.plan = lambda domain, routes, about: defer.succeed([MX1, MX2])  # type: ignore[method-assign]
        seen: list[tuple[list[Target], TLSPolicy]] = []

        def try_targets(targets: Any, job: Any, controls: Any, batch: Any, policy: Any, *rest: Any) -> defer.Deferred:
            seen.append((targets, policy))
            return defer.succeed(("stop here (#4.4.1)\n", None))

        channel._try_targets = try_targets  # type: ignore[method-assign]
        results = self.successResultOf(channel._deliver_domain(job(root, ["bob@example.test"]), channel.reader.current,
                                                               DOMAIN, ["bob@example.test"]))
        self.assertEqual(sts.asked, [DOMAIN])
        self.assertEqual(seen, [([MX1, MX2], TLSPolicy(VERIFY))], "mx2 (no TLSA) must get MTA-STS enforce")
        self.assertEqual(results, [DeliveryResult(DEFERRAL, "stop here (#4.4.1)\n")])

    def deliver(self, tlsa: dict[str, Any], mx_listed: str, options: Any) -> Any:
        """
        Deliver to example.test: MX mx1 (127.0.0.1) and mx2 (127.0.0.2), one
        test server on both; an enforced MTA-STS policy listing C{mx_listed}.
        """
        factory = ScriptedServerFactory()
        factory.tls_options = options
        listening = listen(factory)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        second = listen(factory, "127.0.0.2", port)
        self.addCleanup(second.stopListening)
        root = make_root(self.mktemp(), {"smtproutes": f"{DOMAIN}::{port}"})
        resolver = FakeResolver(mx={DOMAIN: [(10, MX1.host), (20, MX2.host)]},
                                hosts={MX1.host: ["127.0.0.1"], MX2.host: ["127.0.0.2"]},
                                txt={f"_mta-sts.{DOMAIN}": ["v=STSv1; id=1"]})
        secure = FakeSecureResolver({DOMAIN: SecureAnswer((MX1.host, MX2.host), True)},
                                    {f"_{port}._tcp.{host}": v for host, v in tlsa.items()})
        channel = RemoteChannel(root, reader(root), resolver=resolver, reactor=reactor, is_own_address=lambda a: False,
                                shuffle=lambda hosts: None,
                                dane=DanePlanner(secure))  # type: ignore[arg-type]  # the fake has the methods used
        body = f"version: STSv1\nmode: enforce\nmx: {mx_listed}\nmax_age: 86400\n".encode()
        channel.mtasts.discovery.fetch = lambda domain, ca_file: defer.succeed(body)
        self.addCleanup(channel.stop)
        d = channel.deliver(job(root, ["bob@example.test"]))
        return d.addCallback(lambda results: (results, factory))

    @defer.inlineCallbacks
    def test_failed_tlsa_lookup_of_one_mx_keeps_mtasts_enforce_for_the_other(self) -> defer.Generator:
        # mx1: TLSA lookup fails (not tried); mx2: no TLSA, listed by the enforced policy: TLS is required,
        # and the test server offers no STARTTLS
        results, factory = yield self.deliver({MX1.host: DNSTemporaryError}, MX2.host, None)
        self.assertEqual(results[0].status, DEFERRAL, results[0].text)
        self.assertEqual(results[0].text, f"MTA-STS policy of {DOMAIN} requires TLS with a valid certificate: "
                                          "127.0.0.2 does not offer STARTTLS, which is required for this destination. "
                                          "(#4.7.5)\n")
        self.assertFalse(any(c.startswith(b"MAIL") for s in factory.sessions for c in s.commands))

    @defer.inlineCallbacks
    def test_dane_host_tried_although_the_policy_does_not_list_it(self) -> defer.Generator:
        leaf = issue(MX1.host)
        results, factory = yield self.deliver({MX1.host: SecureAnswer((leaf.record(DANE_EE),), True)}, MX2.host,
                                              server_options(leaf))
        self.assertEqual(results[0].status, SUCCESS, results[0].text)
        self.assertTrue(factory.sessions[0].tls)

    @defer.inlineCallbacks
    def test_dane_failure_is_not_blamed_on_mtasts(self) -> defer.Generator:
        leaf, other = issue(MX1.host), issue(MX1.host)
        results, factory = yield self.deliver({MX1.host: SecureAnswer((other.record(DANE_EE),), True)},
                                              "mx9.example.test", server_options(leaf))
        self.assertEqual(results[0].status, DEFERRAL)
        self.assertEqual(results[0].text, f"TLS session with 127.0.0.1 failed: TLSA records of {MX1.host} do not match "
                                          "its certificate. (#4.7.5)\n")
        self.assertEqual(len(factory.sessions), 1, "mx2 is not in the enforced policy: not tried")
