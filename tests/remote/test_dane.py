"""
Tests for DANE in remote delivery (pymta.remote.dane, danedns, danetls):
per-MX decisions from a fake DNSSEC resolver, control/resolvers'
C{validating} declaration, AD handling against a DNS server on 127.0.0.1,
and real TLS sessions with scripted SMTP servers on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from pymta.control import ControlError, load_controls
from pymta.dns import DNSTemporaryError
from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.remote.channel import TEXT_NO_CONNECTION, RemoteChannel
from pymta.remote.dane import DanePlanner
from pymta.remote.danedns import SecureAnswer, SecureResolver
from pymta.remote.danematch import DANE_EE, DANE_TA, TLSARecord
from pymta.remote.danetls import DaneTLS
from pymta.remote.routes import Target
from pymta.remote.smtproutes import Route
from pymta.remote.tlspolicy import OPPORTUNISTIC, VERIFY, TLSPolicy
from pymta.resolvers import configured_nameservers, validating_resolvers
from tests.remote.danecerts import issue, server_options
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import ScriptedServerFactory, listen
from twisted.trial import unittest

MX = "mx.example.test"
MX2 = "mx2.example.test"


class FakeSecureResolver:
    """C{mx}: domain -> SecureAnswer or exception class; C{tlsa}: host -> the same."""

    def __init__(self, mx: dict[str, Any], tlsa: dict[str, Any]) -> None:
        self.mx, self.tlsa_table = mx, tlsa
        self.asked: list[str] = []

    def _answer(self, table: dict[str, Any], name: str) -> defer.Deferred:
        self.asked.append(name)
        value = table.get(name, SecureAnswer((), True))
        if isinstance(value, type):
            return defer.fail(value(name, "TLSA", "SERVFAIL"))
        return defer.succeed(value)

    def secure_mx(self, domain: str) -> defer.Deferred:
        return self._answer(self.mx, domain)

    def tlsa(self, host: str, port: int) -> defer.Deferred:
        return self._answer(self.tlsa_table, f"_{port}._tcp.{host}")

    def stop(self) -> None:
        pass


SECURE_MX = {"example.test": SecureAnswer((MX, MX2), True)}


def targets(*hosts: str, port: int = 25) -> list[Target]:
    return [Target("127.0.0.1", port, host, 10) for host in hosts]


class DecisionTests(unittest.SynchronousTestCase):
    record = TLSARecord(DANE_EE, 1, 1, b"\x01" * 32)

    def decide(self, resolver: FakeSecureResolver, policy: TLSPolicy = TLSPolicy(OPPORTUNISTIC),
               route: Route | None = None, domain: str = "example.test") -> Any:
        planner = DanePlanner(resolver)  # type: ignore[arg-type]  # a fake with the methods used
        return self.successResultOf(planner.decide(domain, targets(MX, MX2), policy, route))

    def test_secure_tlsa(self) -> None:
        pkix = TLSARecord(1, 1, 1, b"\x02" * 32)
        resolver = FakeSecureResolver(SECURE_MX, {f"_25._tcp.{MX}": SecureAnswer((self.record, pkix), True)})
        decisions = self.decide(resolver)
        self.assertEqual(decisions, {MX: DaneTLS(MX, (self.record,), (MX, "example.test"))})

    def test_only_unusable_records_require_tls_without_checks(self) -> None:
        pkix = TLSARecord(1, 1, 1, b"\x02" * 32)
        resolver = FakeSecureResolver(SECURE_MX, {f"_25._tcp.{MX}": SecureAnswer((pkix,), True)})
        decision = self.decide(resolver)[MX]
        self.assertEqual(decision.records, ())
        self.assertTrue(decision.required)

    def test_insecure_answers(self) -> None:
        insecure_mx = FakeSecureResolver({"example.test": SecureAnswer((MX,), False)},
                                         {f"_25._tcp.{MX}": SecureAnswer((self.record,), True)})
        self.assertEqual(self.decide(insecure_mx), {})
        self.assertEqual(insecure_mx.asked, ["example.test"])
        insecure_tlsa = FakeSecureResolver(SECURE_MX, {f"_25._tcp.{MX}": SecureAnswer((self.record,), False)})
        self.assertEqual(self.decide(insecure_tlsa), {})

    def test_failed_tlsa_lookup_defers_that_host(self) -> None:
        resolver = FakeSecureResolver(SECURE_MX, {f"_25._tcp.{MX}": DNSTemporaryError,
                                                  f"_25._tcp.{MX2}": SecureAnswer((self.record,), True)})
        decisions = self.decide(resolver)
        self.assertEqual(decisions[MX], f"The TLSA lookup of _25._tcp.{MX} failed: SERVFAIL. (#4.7.5)\n")
        self.assertIsInstance(decisions[MX2], DaneTLS)

    def test_failed_mx_lookup_defers_every_host(self) -> None:
        resolver = FakeSecureResolver({"example.test": DNSTemporaryError}, {})
        decisions = self.decide(resolver)
        self.assertEqual(set(decisions), {MX, MX2})
        self.assertIn("(#4.7.5)", decisions[MX])

    def test_configuration_wins(self) -> None:
        resolver = FakeSecureResolver(SECURE_MX, {f"_25._tcp.{MX}": SecureAnswer((self.record,), True)})
        self.assertEqual(self.decide(resolver, policy=TLSPolicy(VERIFY)), {})
        self.assertEqual(self.decide(resolver, route=Route("relay.example.test", 25)), {})
        self.assertEqual(self.decide(resolver, domain="[127.0.0.1]"), {})
        self.assertEqual(resolver.asked, [])

    def test_port_route_is_still_mx_delivery(self) -> None:
        # smtproutes "example.test::2525" looks up MX as usual: DANE applies, TLSA at that port
        resolver = FakeSecureResolver(SECURE_MX, {f"_2525._tcp.{MX}": SecureAnswer((self.record,), True)})
        planner = DanePlanner(resolver)  # type: ignore[arg-type]  # a fake with the methods used
        decisions = self.successResultOf(planner.decide("example.test", targets(MX, port=2525),
                                                        TLSPolicy(OPPORTUNISTIC), Route(None, 2525)))
        self.assertEqual(decisions, {MX: DaneTLS(MX, (self.record,), (MX, "example.test"))})

    def test_off_without_a_validating_resolver(self) -> None:
        planner = DanePlanner(None)
        self.assertFalse(planner.enabled)
        self.assertEqual(self.successResultOf(planner.decide("example.test", targets(MX), TLSPolicy(), None)), {})


class ResolversDeclarationTests(unittest.SynchronousTestCase):
    def controls(self, text: str | None) -> Any:
        return load_controls(make_root(self.mktemp(), {} if text is None else {"resolvers": text}))

    def test_declared(self) -> None:
        controls = self.controls("127.0.0.1:5353 validating\n[::1]:53  validating\n")
        self.assertEqual(configured_nameservers(controls), (("127.0.0.1", 5353), ("::1", 53)))
        self.assertTrue(validating_resolvers(controls))
        self.assertTrue(DanePlanner.from_controls(controls, reactor).enabled)

    def test_not_declared(self) -> None:
        for text in (None, "127.0.0.1\n"):
            controls = self.controls(text)
            self.assertFalse(validating_resolvers(controls))
            self.assertFalse(DanePlanner.from_controls(controls, reactor).enabled)

    def test_refused(self) -> None:
        mixed = self.controls("127.0.0.1 validating\n127.0.0.2\n")
        error = self.assertRaises(ControlError, configured_nameservers, mixed)
        self.assertIn("resolvers:2: mark every name server 'validating' or none", str(error))
        unknown = self.controls("127.0.0.1 trusted\n")
        error = self.assertRaises(ControlError, configured_nameservers, unknown)
        self.assertIn("unknown option 'trusted' after the name server", str(error))


class _ADServer(DatagramProtocol):
    """Answers every TLSA question with one record; sets AD when told to (and asked with DO or AD)."""

    def __init__(self, ad: bool, rcode: int = dns.rcode.NOERROR) -> None:
        self.ad, self.rcode = ad, rcode
        self.queries: list[dns.message.Message] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query)
        response = dns.message.make_response(query)
        response.set_rcode(self.rcode)
        if self.rcode == dns.rcode.NOERROR:
            response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TLSA", "3 1 1 " + "ab" * 32))
        if self.ad and (query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO):
            response.flags |= dns.flags.AD
        self.transport.write(response.to_wire(), addr)


class SecureResolverTests(unittest.TestCase):
    timeout = 20

    def resolver(self, server: _ADServer) -> SecureResolver:
        port = reactor.listenUDP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        resolver = SecureResolver(reactor, (("127.0.0.1", port.getHost().port),), lifetime=5)
        self.addCleanup(resolver.stop)
        return resolver

    @defer.inlineCallbacks
    def test_ad_bit(self) -> defer.Generator:
        for ad in (True, False):
            server = _ADServer(ad)
            answer = yield self.resolver(server).tlsa(MX, 25)
            self.assertEqual(answer, SecureAnswer((TLSARecord(3, 1, 1, b"\xab" * 32),), ad))
            self.assertTrue(server.queries[0].ednsflags & dns.flags.DO)
            self.assertTrue(server.queries[0].flags & dns.flags.AD)
            self.assertEqual(server.queries[0].question[0].name.to_text(), f"_25._tcp.{MX}.")

    @defer.inlineCallbacks
    def test_servfail(self) -> defer.Generator:
        resolver = self.resolver(_ADServer(True, dns.rcode.SERVFAIL))
        yield self.assertFailure(resolver.tlsa(MX, 25), DNSTemporaryError)


class ChannelTests(unittest.TestCase):
    """Delivery through the channel: the TLSA records decide about the server's certificate."""

    timeout = 30

    def deliver(self, tlsa: dict[str, Any], options: Any) -> Any:
        factory = ScriptedServerFactory()
        factory.tls_options = options
        listening = listen(factory)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        root = make_root(self.mktemp(), {"smtproutes": f"example.test::{port}"})
        resolver = FakeResolver(mx={"example.test": [(10, MX)]}, hosts={MX: ["127.0.0.1"]})
        secure = FakeSecureResolver({"example.test": SecureAnswer((MX,), True)},
                                    {f"_{port}._tcp.{MX}": v for v in tlsa.values()})
        channel = RemoteChannel(root, reader(root), resolver=resolver, reactor=reactor, is_own_address=lambda a: False,
                                dane=DanePlanner(secure))  # type: ignore[arg-type]  # the fake has the methods used
        self.addCleanup(channel.stop)
        d = channel.deliver(job(root, ["bob@example.test"]))
        return d.addCallback(lambda results: (results, factory))

    @defer.inlineCallbacks
    def test_matching_dane_ee(self) -> defer.Generator:
        leaf = issue(MX)
        results, factory = yield self.deliver({MX: SecureAnswer((leaf.record(DANE_EE),), True)}, server_options(leaf))
        self.assertEqual(results[0].status, SUCCESS, results[0].text)
        self.assertTrue(factory.sessions[0].tls)

    @defer.inlineCallbacks
    def test_matching_dane_ta(self) -> defer.Generator:
        ca = issue("Test CA", ca=True)
        leaf = issue(MX, ca)
        results, _ = yield self.deliver({MX: SecureAnswer((ca.record(DANE_TA),), True)}, server_options(leaf, ca))
        self.assertEqual(results[0].status, SUCCESS, results[0].text)

    @defer.inlineCallbacks
    def test_mismatch_defers_before_mail(self) -> defer.Generator:
        leaf, other = issue(MX), issue(MX)
        results, factory = yield self.deliver({MX: SecureAnswer((other.record(DANE_EE),), True)}, server_options(leaf))
        self.assertEqual(results[0].status, DEFERRAL)
        self.assertEqual(results[0].text, f"TLS session with 127.0.0.1 failed: TLSA records of {MX} do not match its "
                                          "certificate. (#4.7.5)\n")
        self.assertFalse(any(c.startswith(b"MAIL") for c in factory.sessions[0].commands))

    @defer.inlineCallbacks
    def test_dane_ta_name_mismatch(self) -> defer.Generator:
        ca = issue("Test CA", ca=True)
        leaf = issue("elsewhere.test", ca)
        results, _ = yield self.deliver({MX: SecureAnswer((ca.record(DANE_TA),), True)}, server_options(leaf, ca))
        self.assertEqual(results[0].status, DEFERRAL)
        self.assertIn(f"TLSA records of {MX} do not match its certificate (its certificate names none of {MX}, "
                      "example.test). (#4.7.5)", results[0].text)

    @defer.inlineCallbacks
    def test_tls_required_without_usable_records(self) -> defer.Generator:
        pkix = TLSARecord(1, 1, 1, b"\x02" * 32)
        results, factory = yield self.deliver({MX: SecureAnswer((pkix,), True)}, None)
        self.assertEqual(results[0].status, DEFERRAL)
        self.assertEqual(results[0].text,
                         "127.0.0.1 does not offer STARTTLS, which is required for this destination. (#4.7.5)\n")
        leaf = issue("anything.test")
        results, factory = yield self.deliver({MX: SecureAnswer((pkix,), True)}, server_options(leaf))
        self.assertEqual(results[0].status, SUCCESS, results[0].text)
        self.assertTrue(factory.sessions[0].tls)

    @defer.inlineCallbacks
    def test_failed_lookup_defers_without_connecting(self) -> defer.Generator:
        results, factory = yield self.deliver({MX: DNSTemporaryError}, server_options(issue(MX)))
        self.assertEqual(results[0].status, DEFERRAL)
        self.assertTrue(results[0].text.startswith(f"The TLSA lookup of _"), results[0].text)
        self.assertIn("(#4.7.5)", results[0].text)
        self.assertEqual(factory.sessions, [])
        self.assertNotEqual(results[0].text, TEXT_NO_CONNECTION)
