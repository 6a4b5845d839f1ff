"""Tests for pymta.remote.localaddrs."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.remote import localaddrs


class OwnAddressesTests(unittest.SynchronousTestCase):
    def test_loopback_interfaces_found(self) -> None:
        found = localaddrs.own_addresses()
        self.assertIn("127.0.0.1", found)

    def test_ipv6_file_parsed(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("00000000000000000000000000000001 01 80 10 80       lo\n")
            f.write("20010db8000000000000000000000025 02 40 00 80     eth0\n")
        self.assertEqual(localaddrs._ipv6_interface_addresses(path), {"::1", "2001:db8::25"})
        self.assertEqual(localaddrs._ipv6_interface_addresses(self.mktemp()), set())
