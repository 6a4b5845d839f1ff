"""pymta.clientaddress: one way to write and to count a client's address."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.clientaddress import client_group, normalise_ip


class NormaliseTests(SynchronousTestCase):
    def test_mapped_ipv4_is_ipv4(self) -> None:
        self.assertEqual(normalise_ip("::ffff:10.0.0.1"), "10.0.0.1")

    def test_canonical_text(self) -> None:
        self.assertEqual(normalise_ip("2001:DB8:0:0::1"), "2001:db8::1")
        self.assertEqual(normalise_ip("192.0.2.7"), "192.0.2.7")

    def test_not_an_address_unchanged(self) -> None:
        self.assertEqual(normalise_ip("unknown"), "unknown")


class GroupTests(SynchronousTestCase):
    def test_ipv4_and_mapped(self) -> None:
        self.assertEqual(client_group("192.0.2.7"), "192.0.2.7")
        self.assertEqual(client_group("::ffff:192.0.2.7"), "192.0.2.7")

    def test_ipv6_grouped_by_64(self) -> None:
        self.assertEqual(client_group("2001:db8:1:2::7"), "2001:db8:1:2::/64")
        self.assertEqual(client_group("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64")
        self.assertNotEqual(client_group("2001:db8:1:3::1"), client_group("2001:db8:1:2::1"))

    def test_scope_dropped(self) -> None:
        self.assertEqual(client_group("fe80::1%eth0"), "fe80::/64")

    def test_not_an_address(self) -> None:
        self.assertEqual(client_group("unknown"), "unknown")
