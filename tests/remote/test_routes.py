"""Tests for pymta.remote.routes: smtproutes parsing and target planning (fake resolver)."""

from __future__ import annotations

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from pymta.control import ControlTable, parse_map
from pymta.interfaces import DEFERRAL, FAILURE
from pymta.remote import routes
from pymta.dns import DNSTemporaryError
from pymta.remote.routes import Route, RouteFailure, Target, TargetPlanner, find_smtproute, parse_route
from tests.remote.fakes import FakeResolver


class SmtproutesTests(unittest.SynchronousTestCase):
    TABLE = {
        "inside.af.mil": "firewall.af.mil:26",
        ".af.mil": "",
        ".mil": "milgate",
        "v6.test": "[2001:db8::25]:587",
        "lit.test": "[192.0.2.9]",
        "port.test": ":2525",
        "": "smarthost.example",
    }

    def test_lookup_order(self) -> None:
        self.assertEqual(find_smtproute(self.TABLE, "inside.af.mil"), Route("firewall.af.mil", 26))
        self.assertEqual(find_smtproute(self.TABLE, "x.af.mil"), Route(None, 25))
        self.assertEqual(find_smtproute(self.TABLE, "navy.mil"), Route("milgate", 25))
        self.assertEqual(find_smtproute(self.TABLE, "INSIDE.AF.MIL"), Route("firewall.af.mil", 26))
        self.assertEqual(find_smtproute(self.TABLE, "other.org"), Route("smarthost.example", 25))
        self.assertIsNone(find_smtproute({}, "other.org"))

    def test_literals_and_ports(self) -> None:
        self.assertEqual(find_smtproute(self.TABLE, "v6.test"), Route("[2001:db8::25]", 587))
        self.assertEqual(find_smtproute(self.TABLE, "lit.test"), Route("[192.0.2.9]", 25))
        self.assertEqual(find_smtproute(self.TABLE, "port.test"), Route(None, 2525))

    def test_bad_values(self) -> None:
        for value in ("host:0", "host:99999", "host:x", "[nonsense]", "[2001:db8::1", "2001:db8::1"):
            self.assertRaises(routes.RouteError, parse_route, value)


class PlannerTests(unittest.SynchronousTestCase):
    def planner(self, resolver: FakeResolver, own: set[str] = frozenset(), shuffle=None) -> TargetPlanner:
        return TargetPlanner(resolver, lambda a: routes.is_self_address(a, own), shuffle or (lambda l: None))

    def test_mx_expansion_and_order(self) -> None:
        resolver = FakeResolver(
            mx={"d.test": [(20, "b.d.test"), (10, "a.d.test"), (10, "c.d.test")]},
            hosts={"a.d.test": ["192.0.2.1", "2001:db8::1"], "b.d.test": ["192.0.2.2"], "c.d.test": ["192.0.2.1"]},
        )
        targets = self.successResultOf(self.planner(resolver).plan("d.test", {}))
        self.assertEqual(
            targets,
            [Target("192.0.2.1", 25, "a.d.test", 10), Target("2001:db8::1", 25, "a.d.test", 10), Target("192.0.2.2", 25, "b.d.test", 20)],
        )

    def test_equal_preferences_shuffled(self) -> None:
        resolver = FakeResolver(mx={"d.test": [(10, "a.d.test"), (10, "b.d.test"), (5, "z.d.test")]},
                                hosts={"a.d.test": ["192.0.2.1"], "b.d.test": ["192.0.2.2"], "z.d.test": ["192.0.2.3"]})
        seen = []
        targets = self.successResultOf(self.planner(resolver, shuffle=lambda l: (seen.append(list(l)), l.reverse())).plan("d.test", {}))
        self.assertEqual([t.host for t in targets], ["z.d.test", "b.d.test", "a.d.test"])
        self.assertIn(["a.d.test", "b.d.test"], seen)

    def test_unresolvable_mx_host_skipped(self) -> None:
        resolver = FakeResolver(mx={"d.test": [(10, "gone.d.test"), (20, "b.d.test")]}, hosts={"b.d.test": ["192.0.2.2"]})
        targets = self.successResultOf(self.planner(resolver).plan("d.test", {}))
        self.assertEqual([t.address for t in targets], ["192.0.2.2"])

    def test_temporary_mx_host_failure_with_no_address(self) -> None:
        resolver = FakeResolver(mx={"d.test": [(10, "a.d.test")]}, hosts={"a.d.test": DNSTemporaryError})
        failure = self.failureResultOf(self.planner(resolver).plan("d.test", {}), RouteFailure)
        self.assertEqual(failure.value.status, DEFERRAL)

    def test_address_literal_domain(self) -> None:
        planner = self.planner(FakeResolver())
        self.assertEqual(self.successResultOf(planner.plan("[192.0.2.5]", {})), [Target("192.0.2.5", 25, "[192.0.2.5]", 0)])
        self.assertEqual(self.successResultOf(planner.plan("[IPv6:2001:db8::5]", {}))[0].address, "2001:db8::5")
        failure = self.failureResultOf(planner.plan("[127.0.0.1]", {}), RouteFailure)
        self.assertEqual((failure.value.status, failure.value.text), (DEFERRAL, routes.TEXT_SELF_MX))

    def test_relay_skips_self_check(self) -> None:
        planner = self.planner(FakeResolver())
        targets = self.successResultOf(planner.plan("x.test", {"": "127.0.0.1:2525"}))
        self.assertEqual(targets, [Target("127.0.0.1", 2525, "127.0.0.1", 0, Route("127.0.0.1", 2525))])

    def test_relay_targets_carry_their_route_options(self) -> None:
        planner = self.planner(FakeResolver())
        targets = self.successResultOf(planner.plan("x.test", {"": "[192.0.2.9] smtps auth=alice"}))
        self.assertEqual(targets, [Target("192.0.2.9", 465, "[192.0.2.9]", 0,
                                          Route("[192.0.2.9]", 465, smtps=True, login="alice"))])

    def test_relay_not_found_defers(self) -> None:
        failure = self.failureResultOf(self.planner(FakeResolver()).plan("x.test", {"": "nohost.test"}), RouteFailure)
        self.assertEqual(failure.value.status, DEFERRAL)
        self.assertIn("nohost.test", failure.value.text)

    def test_bad_route_defers(self) -> None:
        failure = self.failureResultOf(self.planner(FakeResolver()).plan("x.test", {"x.test": "host:notaport"}), RouteFailure)
        self.assertEqual((failure.value.status, failure.value.text), (DEFERRAL, routes.TEXT_BAD_ROUTE))

    def test_bad_route_log_line_names_the_delivery(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.failureResultOf(self.planner(FakeResolver()).plan("x.test", {"x.test": "host:notaport"},
                                                                "msg 5 delivery 2"), RouteFailure)
        logged = [formatEvent(e) for e in events if "smtproutes" in formatEvent(e)]
        self.assertEqual(len(logged), 1)
        self.assertTrue(logged[0].startswith("msg 5 delivery 2: smtproutes unusable for x.test, deferring: "),
                        logged[0])

    def test_bad_route_from_control_file_names_file_and_line(self) -> None:
        # the control files are checked when read; a table that reaches delivery broken still names its line
        table = parse_map("/r/control/smtproutes", ["# routes", "good.test:relay.test", "x.test:host:99999"])
        self.assertIsInstance(table, ControlTable)
        error = self.assertRaises(routes.RouteError, find_smtproute, table, "x.test")
        self.assertTrue(str(error).startswith("/r/control/smtproutes:3: bad port '99999'"), str(error))
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        failure = self.failureResultOf(self.planner(FakeResolver()).plan("x.test", table), RouteFailure)
        self.assertEqual((failure.value.status, failure.value.text), (DEFERRAL, routes.TEXT_BAD_ROUTE))
        logged = [formatEvent(e) for e in events if "smtproutes" in formatEvent(e)]
        self.assertEqual(len(logged), 1)
        self.assertIn("x.test", logged[0])
        self.assertIn("/r/control/smtproutes:3: bad port '99999'", logged[0])

    def test_self_check_keeps_lower_preferences(self) -> None:
        resolver = FakeResolver(mx={"d.test": [(10, "a.d.test"), (20, "me.d.test"), (30, "c.d.test")]},
                                hosts={"a.d.test": ["192.0.2.1"], "me.d.test": ["198.51.100.1"], "c.d.test": ["192.0.2.3"]})
        targets = self.successResultOf(self.planner(resolver, {"198.51.100.1"}).plan("d.test", {}))
        self.assertEqual([t.address for t in targets], ["192.0.2.1"])

    def test_mx_pointing_at_unspecified_or_mapped_loopback(self) -> None:
        for address in ("0.0.0.0", "::ffff:127.0.0.1", "::1", "127.1.2.3"):
            resolver = FakeResolver(mx={"d.test": [(10, "a.d.test")]}, hosts={"a.d.test": [address]})
            failure = self.failureResultOf(self.planner(resolver).plan("d.test", {}), RouteFailure)
            self.assertEqual(failure.value.status, DEFERRAL, address)

    def test_null_mx_and_nxdomain_bounce(self) -> None:
        resolver = FakeResolver(mx={"null.test": [(0, "")]})
        planner = self.planner(resolver)
        self.assertEqual(self.failureResultOf(planner.plan("null.test", {}), RouteFailure).value.status, FAILURE)
        self.assertEqual(self.failureResultOf(planner.plan("none.test", {}), RouteFailure).value.status, FAILURE)
