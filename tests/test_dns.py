"""
Tests for pymta.dns against a real twisted.names authority on 127.0.0.1.
"""

from __future__ import annotations

import dns.resolver
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.names import dns as tdns
from twisted.trial import unittest

from pymta import dns as pdns
from tests.remote.dnsserver import DNSTestServer

ZONE = b"example.test"
LONG_TXT = [b"x" * 250] * 12  # forces a truncated UDP answer (> 512 bytes)

RECORDS = {
    b"example.test": [tdns.Record_MX(20, b"mx2.example.test"), tdns.Record_MX(10, b"mx1.example.test")],
    b"mx1.example.test": [tdns.Record_A("192.0.2.1"), tdns.Record_AAAA("2001:db8::1")],
    b"mx2.example.test": [tdns.Record_A("192.0.2.2")],
    b"v6only.example.test": [tdns.Record_AAAA("2001:db8::6")],
    b"nomx.example.test": [tdns.Record_A("192.0.2.3")],
    b"null.example.test": [tdns.Record_MX(0, b"")],
    b"alias.example.test": [tdns.Record_CNAME(b"mx2.example.test")],
    b"loop.example.test": [tdns.Record_CNAME(b"loop.example.test")],
    b"2.0.0.127.bl.example.test": [tdns.Record_A("127.0.0.2"), tdns.Record_TXT(b"listed", b" because")],
    b"big.example.test": [tdns.Record_TXT(*LONG_TXT)] + [tdns.Record_TXT(b"%d" % i + b"y" * 200) for i in range(5)],
    b"1.2.0.192.in-addr.arpa": [],
}


class DNSResolverTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = DNSTestServer(ZONE, RECORDS)
        self.addCleanup(self.server.stop)
        self.resolver = pdns.DNSResolver(reactor, resolver=self.server.dnspython_resolver(), lifetime=2.0)
        self.addCleanup(self.resolver.stop)

    @defer.inlineCallbacks
    def test_mx_published(self) -> defer.Generator:
        records = yield self.resolver.mx("Example.Test")
        self.assertEqual(sorted(records), [(10, "mx1.example.test"), (20, "mx2.example.test")])

    @defer.inlineCallbacks
    def test_mx_none(self) -> defer.Generator:
        self.assertEqual((yield self.resolver.mx("nomx.example.test")), [])

    @defer.inlineCallbacks
    def test_null_mx(self) -> defer.Generator:
        records = yield self.resolver.mx("null.example.test")
        self.assertEqual(records, [(0, pdns.NULL_MX)])
        self.assertTrue(pdns.is_null_mx(records))

    @defer.inlineCallbacks
    def test_nxdomain_is_permanent(self) -> defer.Generator:
        error = yield self.assertFailure(self.resolver.mx("nosuch.example.test"), pdns.DNSPermanentError)
        self.assertEqual(error.rdtype, "MX")

    @defer.inlineCallbacks
    def test_silent_server_is_temporary(self) -> defer.Generator:
        silent = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = silent.getHost().port
        resolver = pdns.DNSResolver(reactor, resolver=r, lifetime=0.3)
        self.addCleanup(resolver.stop)
        error = yield self.assertFailure(resolver.mx("example.test"), pdns.DNSTemporaryError)
        self.assertEqual(error.name, "example.test")
        yield self.assertFailure(resolver.addresses("example.test"), pdns.DNSTemporaryError)

    @defer.inlineCallbacks
    def test_addresses_a_then_aaaa(self) -> defer.Generator:
        self.assertEqual((yield self.resolver.addresses("mx1.example.test")), ["192.0.2.1", "2001:db8::1"])
        self.assertEqual((yield self.resolver.addresses("v6only.example.test")), ["2001:db8::6"])

    @defer.inlineCallbacks
    def test_addresses_follows_cname(self) -> defer.Generator:
        self.assertEqual((yield self.resolver.addresses("alias.example.test")), ["192.0.2.2"])

    @defer.inlineCallbacks
    def test_cname_loop_is_an_error(self) -> defer.Generator:
        d = self.resolver.addresses("loop.example.test")
        yield self.assertFailure(d, pdns.DNSError)

    @defer.inlineCallbacks
    def test_addresses_nxdomain(self) -> defer.Generator:
        yield self.assertFailure(self.resolver.addresses("gone.example.test"), pdns.DNSPermanentError)

    @defer.inlineCallbacks
    def test_addresses_of_literal(self) -> defer.Generator:
        self.assertEqual((yield self.resolver.addresses("[127.0.0.1]")), ["127.0.0.1"])
        self.assertEqual((yield self.resolver.addresses("[IPv6:::1]")), ["::1"])

    @defer.inlineCallbacks
    def test_dnsbl_style_lookups(self) -> defer.Generator:
        self.assertEqual((yield self.resolver.a("2.0.0.127.bl.example.test")), ["127.0.0.2"])
        self.assertEqual((yield self.resolver.txt("2.0.0.127.bl.example.test")), ["listed because"])
        yield self.assertFailure(self.resolver.a("3.0.0.127.bl.example.test"), pdns.DNSPermanentError)

    @defer.inlineCallbacks
    def test_truncated_answer_retried_over_tcp(self) -> defer.Generator:
        texts = yield self.resolver.txt("big.example.test")
        self.assertEqual(len(texts), 6)
        self.assertIn("x" * 3000, "".join(texts))

    @defer.inlineCallbacks
    def test_invalid_name_is_permanent(self) -> defer.Generator:
        yield self.assertFailure(self.resolver.mx("a..b"), pdns.DNSPermanentError)
        yield self.assertFailure(self.resolver.mx(""), pdns.DNSPermanentError)


class LiteralTests(unittest.SynchronousTestCase):
    def test_ip_literal(self) -> None:
        self.assertEqual(pdns.ip_literal("[1.2.3.4]"), "1.2.3.4")
        self.assertEqual(pdns.ip_literal("1.2.3.4"), "1.2.3.4")
        self.assertEqual(pdns.ip_literal("[IPv6:2001:DB8::1]"), "2001:db8::1")
        self.assertIsNone(pdns.ip_literal("example.com"))
        self.assertIsNone(pdns.ip_literal("[example.com]"))


class RestartTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_lookups_after_stop(self) -> defer.Generator:
        server = DNSTestServer(ZONE, RECORDS)
        self.addCleanup(server.stop)
        resolver = pdns.DNSResolver(reactor, resolver=server.dnspython_resolver())
        self.addCleanup(resolver.stop)
        self.assertEqual((yield resolver.a("nomx.example.test")), ["192.0.2.3"])
        resolver.stop()
        self.assertEqual((yield resolver.a("nomx.example.test")), ["192.0.2.3"])
