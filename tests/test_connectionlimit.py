"""ConnectionLimiter: total and per-address slots; IPv6 counted per /64, IPv4-mapped as IPv4."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.connectionlimit import PER_ADDRESS, TOTAL, ConnectionLimiter


class Limits(SynchronousTestCase):
    def test_per_address_then_total(self) -> None:
        limiter = ConnectionLimiter()
        self.assertEqual([limiter.acquire("192.0.2.1", 3, 2) for _ in range(3)], [None, None, PER_ADDRESS])
        self.assertIsNone(limiter.acquire("192.0.2.2", 3, 2))
        self.assertEqual(limiter.acquire("192.0.2.3", 3, 2), TOTAL)
        self.assertEqual(limiter.total, 3)
        limiter.release("192.0.2.1")
        self.assertIsNone(limiter.acquire("192.0.2.3", 3, 2))
        for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            limiter.release(ip)
        self.assertEqual((limiter.total, limiter.by_group), (0, {}))

    def test_ipv6_one_slot_set_per_64(self) -> None:
        limiter = ConnectionLimiter()
        self.assertIsNone(limiter.acquire("2001:db8::1", 100, 2))
        self.assertIsNone(limiter.acquire("2001:db8::2", 100, 2))
        self.assertEqual(limiter.acquire("2001:db8::ffff:3", 100, 2), PER_ADDRESS)
        self.assertIsNone(limiter.acquire("2001:db8:0:1::1", 100, 2))
        limiter.release("2001:db8::2")
        self.assertIsNone(limiter.acquire("2001:db8::3", 100, 2))
        self.assertEqual(limiter.by_group, {"2001:db8::/64": 2, "2001:db8:0:1::/64": 1})

    def test_no_address_counts_in_the_total_only(self) -> None:
        """A connection that is no client's (a proxy's health check) holds a slot of the total, none of an address."""
        limiter = ConnectionLimiter()
        self.assertIsNone(limiter.acquire("192.0.2.1", 3, 1))
        self.assertIsNone(limiter.acquire(None, 3, 1))
        self.assertIsNone(limiter.acquire(None, 3, 1))
        self.assertEqual((limiter.total, limiter.by_group), (3, {"192.0.2.1": 1}))
        self.assertEqual(limiter.acquire(None, 3, 1), TOTAL)
        limiter.release(None)
        self.assertEqual(limiter.acquire("192.0.2.1", 3, 1), PER_ADDRESS)
        for ip in ("192.0.2.1", None):
            limiter.release(ip)
        self.assertEqual((limiter.total, limiter.by_group), (0, {}))
