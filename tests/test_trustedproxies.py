"""pymta.trustedproxies: control/trustedproxies parsed, matched and re-read per snapshot."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck.controlfiles import check_control_files
from pymta.configcheck.problem import ERROR
from pymta.control import ControlError, ControlReader
from pymta.trustedproxies import TrustedProxies, current_trusted_proxies, parse_trusted_proxies
from tests.configcheck.helpers import check, init_root, located, write


class ParseAndMatch(SynchronousTestCase):
    def test_addresses_and_prefixes(self) -> None:
        trusted = parse_trusted_proxies(["127.0.0.1", "10.1.0.0/16", "2001:db8::/32", "::1"])
        for ip in ("127.0.0.1", "10.1.200.3", "2001:db8::7", "::1", "::ffff:10.1.0.9"):
            self.assertTrue(trusted.trusts(ip), ip)
        for ip in ("127.0.0.2", "10.2.0.1", "2001:db9::1", "unknown", "/run/sock", ""):
            self.assertFalse(trusted.trusts(ip), ip)

    def test_nothing_listed_trusts_nobody(self) -> None:
        self.assertFalse(TrustedProxies().trusts("127.0.0.1"))
        self.assertFalse(parse_trusted_proxies([]).trusts("127.0.0.1"))

    def test_bad_entries_are_refused(self) -> None:
        for entry, reason in (
            ("proxy.example", "not an IP address or prefix: 'proxy.example'"),
            ("10.1.2.3/16", "10.1.2.3/16 has host bits set"),
            ("10.0.0.0/33", "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"),
            ("10.0.", "not an IP address or prefix: '10.0.'"),
            ("::ffff:127.0.0.1", "an IPv4-mapped address: write it as IPv4, not '::ffff:127.0.0.1'"),
            ("::ffff:0:0/96", "an IPv4-mapped address: write it as IPv4, not '::ffff:0:0/96'"),
        ):
            error = self.assertRaises(ControlError, parse_trusted_proxies, ["127.0.0.1", entry])
            self.assertEqual((error.lineno, error.reason), (2, reason))


class PerSnapshot(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "control"))
        self.path = os.path.join(self.root, "control", "trustedproxies")

    def test_reload_applies_and_a_broken_file_keeps_the_old_list(self) -> None:
        reader = ControlReader(self.root)
        current = current_trusted_proxies(reader)
        self.assertFalse(current().trusts("127.0.0.1"))
        with open(self.path, "w") as f:
            f.write("# the HAProxy host\n127.0.0.1\n")
        self.assertFalse(current().trusts("127.0.0.1"))  # read at the next reload
        reader.reload()
        self.assertTrue(current().trusts("127.0.0.1"))
        self.assertIs(current(), current())
        with open(self.path, "w") as f:
            f.write("127.0.0.1\nproxy.example\n")
        error = self.assertRaises(ControlError, reader.reload)
        self.assertEqual((error.path, error.lineno), (self.path, 2))
        self.assertTrue(current().trusts("127.0.0.1"))

    def test_a_broken_file_stops_the_start(self) -> None:
        with open(self.path, "w") as f:
            f.write("10.0.0.1/8\n")
        self.assertRaises(ControlError, current_trusted_proxies, ControlReader(self.root))


class Check(SynchronousTestCase):
    def test_pymta_check_names_every_bad_line(self) -> None:
        root = init_root(self)
        write(root, "control/trustedproxies", "127.0.0.1\nhaproxy\n10.0.0.0/8\n::1/129\n")
        self.assertEqual(located(root, check(root, check_control_files)),
                         [("control/trustedproxies", 2, ERROR), ("control/trustedproxies", 4, ERROR)])
