"""rblsmtpd's decisions against a fake resolver; the protocol's fake-server mode."""

from __future__ import annotations

import os

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.dns import DNSPermanentError, DNSTemporaryError
from pymta.smtpd.dnsbl import DNSBL, RBLZone, parse_rbls, rbl_zones, reply_from_variable, reverse_name
from tests.smtpd.helpers import Session, make_root


class FakeResolver:
    def __init__(self, txt=None, a=None, hang=False):  # type: ignore[no-untyped-def]
        self.txt_records = txt or {}
        self.a_records = a or {}
        self.hang = hang
        self.queries: list[tuple[str, str]] = []

    def _answer(self, table, name, kind):  # type: ignore[no-untyped-def]
        self.queries.append((kind, name))
        if self.hang:
            return defer.Deferred()
        value = table.get(name)
        if isinstance(value, Exception):
            return defer.fail(value)
        if value is None:
            return defer.fail(DNSPermanentError(name, kind, "NXDOMAIN"))
        return defer.succeed(value)

    def txt(self, name):  # type: ignore[no-untyped-def]
        return self._answer(self.txt_records, name, "TXT")

    def a(self, name):  # type: ignore[no-untyped-def]
        return self._answer(self.a_records, name, "A")

    def ptr(self, address):  # type: ignore[no-untyped-def]
        return self._answer(self.ptr_records, address, "PTR")

    def addresses(self, host):  # type: ignore[no-untyped-def]
        return self._answer(self.a_records, host, "A")

    ptr_records: dict = {}


class Decisions(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()

    def test_variable(self) -> None:
        self.assertIsNone(reply_from_variable(""))
        self.assertEqual(reply_from_variable("-go away"), "553 go away")
        self.assertEqual(reply_from_variable("later\x01"), "451 later?")
        bl = DNSBL(FakeResolver(), [], self.clock)
        self.assertEqual(self.successResultOf(bl.check("1.2.3.4", "-no")), "553 no")

    def test_reverse_names(self) -> None:
        self.assertEqual(reverse_name("1.2.3.4"), "4.3.2.1")
        self.assertEqual(reverse_name("::ffff:1.2.3.4"), "4.3.2.1")
        self.assertTrue(reverse_name("2001:db8::1").startswith("1.0.0.0."))
        self.assertIsNone(reverse_name("unknown"))

    def test_zones_in_order(self) -> None:
        zones = parse_rbls(["+allow.example", "temp.example", "perm.example:permanent"])
        resolver = FakeResolver(
            txt={"4.3.2.1.temp.example": ["listed, see http://x"], "5.3.2.1.perm.example": ["bad" * 100]},
            a={"6.3.2.1.allow.example": ["127.0.0.2"]},
        )
        bl = DNSBL(resolver, zones, self.clock)
        self.assertEqual(self.successResultOf(bl.check("1.2.3.4")), "451 listed, see http://x")
        self.assertEqual(self.successResultOf(bl.check("1.2.3.5")), "553 " + ("bad" * 100)[:200])
        resolver.txt_records["4.3.2.1.temp.example"] = ["x"]
        self.assertIsNone(self.successResultOf(bl.check("1.2.3.6")))
        self.assertIsNone(self.successResultOf(bl.check("1.2.3.7")))

    def test_errors_ignored_and_cache(self) -> None:
        resolver = FakeResolver(txt={"4.3.2.1.z.example": DNSTemporaryError("n", "TXT", "SERVFAIL")})
        bl = DNSBL(resolver, parse_rbls(["z.example"]), self.clock, cache_ttl=300)
        self.assertIsNone(self.successResultOf(bl.check("1.2.3.4")))
        self.flushLoggedErrors()
        resolver.txt_records["4.3.2.1.z.example"] = ["now listed"]
        self.assertIsNone(self.successResultOf(bl.check("1.2.3.4")))  # cached
        self.clock.advance(301)
        self.assertEqual(self.successResultOf(bl.check("1.2.3.4")), "451 now listed")

    def test_time_bound(self) -> None:
        bl = DNSBL(FakeResolver(hang=True), parse_rbls(["z.example"]), self.clock, timeout=10)
        d = bl.check("1.2.3.4")
        self.assertNoResult(d)
        self.clock.advance(10)
        self.assertIsNone(self.successResultOf(d))

    def test_cache_bounded(self) -> None:
        bl = DNSBL(FakeResolver(), parse_rbls(["z.example"]), self.clock, cache_size=10)
        for i in range(50):
            bl.check(f"10.0.0.{i}")
        self.assertEqual(len(bl._cache), 10)


class ZoneFile(SynchronousTestCase):
    """control/rbls: every line is a zone, zone:permanent or +zone; anything else names file and line."""

    def test_forms(self) -> None:
        self.assertEqual(parse_rbls(["zen.example", "perm.example.:Permanent", "+allow.example"]),
                         [RBLZone("zen.example"), RBLZone("perm.example", permanent=True),
                          RBLZone("allow.example", allowlist=True)])

    def test_refused_lines(self) -> None:
        cases = {
            "zen.example:perm": "expected zone, zone:permanent or +zone",  # used to be a temporary zone
            "+allow.example:permanent": "expected zone",  # used to be an allowlist named 'allow.example:permanent'
            "zen example": "blank inside",
            " zen.example": "blank at the start",
            "zen..example": "empty label",
            "http://zen.example": "expected zone",
        }
        for line, reason in cases.items():
            error = self.assertRaises(ControlError, parse_rbls, ["ok.example", line])
            self.assertTrue(str(error).startswith("rbls:2: "), str(error))
            self.assertIn(reason, str(error), line)

    def test_file_and_line(self) -> None:
        root = make_root(self.mktemp(), rbls="# zones\nzen.example\n\nzen.example:perm")
        error = self.assertRaises(ControlError, rbl_zones, load_controls(root))
        self.assertEqual(str(error), f"{os.path.join(root, 'control', 'rbls')}:4: "
                                     "expected zone, zone:permanent or +zone, found 'zen.example:perm'")
        self.assertEqual(rbl_zones(load_controls(make_root(self.mktemp()))), [])


class FakeServer(SynchronousTestCase):
    def test_listed_client(self) -> None:
        root = make_root(self.mktemp())
        resolver = FakeResolver(txt={"7.2.0.192.z.example": ["spam source"]}, hang=False)
        s = Session(root)
        s.context.dnsbl = DNSBL(resolver, parse_rbls(["z.example"]), s.clock)
        s2 = Session(root, context=s.context)
        self.assertEqual(s2.take(), ["220 rblsmtpd.local"])
        self.assertEqual(s2.cmd("EHLO x"), ["250 rblsmtpd.local"])
        self.assertEqual(s2.cmd("MAIL FROM:<a@b>"), ["250 rblsmtpd.local"])
        self.assertEqual(s2.cmd("RCPT TO:<c@d>"), ["451 spam source"])
        self.assertEqual(s2.cmd("DATA"), ["451 spam source"])
        self.assertEqual(s2.cmd("QUIT"), ["221 rblsmtpd.local"])
        s.close()

    def test_variable_from_rules_and_time_limit(self) -> None:
        root = make_root(self.mktemp())
        s = Session(root, rules=':allow,RBLSMTPD="-blocked here"')
        self.assertEqual(s.take(), ["220 rblsmtpd.local"])
        self.assertEqual(s.cmd("RCPT TO:<c@d>"), ["553 blocked here"])
        s.clock.advance(30)
        self.assertEqual(s.cmd("NOOP"), ["250 rblsmtpd.local"])
        s.clock.advance(31)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.take(), [])

    def test_accepted_client_greeted_after_lookup(self) -> None:
        root = make_root(self.mktemp())
        pending = FakeResolver(hang=True)
        s = Session(root)
        s.context.dnsbl = DNSBL(pending, parse_rbls(["z.example"]), s.clock, timeout=5)
        s2 = Session(root, context=s.context)
        self.assertEqual(s2.send(b"EHLO early\r\n"), [])
        s.clock.advance(5)
        self.assertEqual(s2.take()[:2], ["220 mx.example.org ESMTP", "250-mx.example.org"])
        s.close()
        s2.close()


class HostRules(SynchronousTestCase):
    """=host rules in tcp.smtp: the client's name comes from a reverse lookup, bounded in time."""

    RULES = '=.good.example:allow,RELAYCLIENT=""\n=bad.example:deny\n:allow\n'

    def session(self, ptr, hang=False):  # type: ignore[no-untyped-def]
        resolver = FakeResolver(hang=hang)
        resolver.ptr_records = ptr
        # each name maps back to its address (forward-confirmed, as pymta-smtpd requires)
        resolver.a_records = {name.rstrip("."): [ip] for ip, names in ptr.items() for name in names}
        s = Session(make_root(self.mktemp()), rules=self.RULES, resolver=resolver, reverse_lookup_seconds=5)
        self.addCleanup(s.close)
        return s

    def test_name_suffix_rule(self) -> None:
        s = self.session({"192.0.2.7": ["mx.good.example."]})
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertEqual(s.proto.relayclient, "")
        self.assertEqual(s.proto.env["TCPREMOTEHOST"], "mx.good.example")

    def test_name_deny(self) -> None:
        s = self.session({"192.0.2.7": ["bad.example"]})
        self.assertEqual(s.take(), [])
        self.assertTrue(s.transport.disconnecting)

    def test_no_name_and_slow_lookup(self) -> None:
        s = self.session({})
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertIsNone(s.proto.relayclient)
        s = self.session({}, hang=True)
        self.assertEqual(s.send(b"EHLO x\r\n"), [])
        s.clock.advance(5)
        self.assertEqual(s.take()[0], "220 mx.example.org ESMTP")

    def test_received_line_names_the_client(self) -> None:
        s = self.session({"192.0.2.7": ["mx.good.example."]})
        s.take()
        s.cmd("HELO mx.good.example")
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        s.cmd("DATA")
        s.send(b"x\r\n.\r\n")
        self.assertTrue(s.sink.queued[0].data.startswith(b"Received: from mx.good.example (192.0.2.7)\n"))
