"""Reading the authserv-id of an incoming Authentication-Results field (RFC 8601 section 2.2)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.authservid import MAX_VALUE_BYTES, authserv_id_of
from pymta.senderauth.header import is_ours

AR = b"Authentication-Results"


class AuthservIdTests(SynchronousTestCase):
    def test_cfws_and_quoted_strings(self) -> None:
        for value in (b" mx.example.net; none", b" (a (b) c) mx.example.net; spf=pass", b' "mx.example.net"; none',
                      b" MX.Example.NET. 1 (v);\n\tspf=pass", b" (a \\) b) mx.example.net\n\t; none",
                      b' "mx.exam\\ple.net" ; none'):
            self.assertEqual(authserv_id_of(value), "mx.example.net", value)

    def test_unreadable_values(self) -> None:
        for value in (b" (a (b) mx.example.net; none", b' "mx.example.net; none', b" mx.example.net",
                      b" mx.example.net dkim=pass", b" ; none", b" mx.example.net@x; none",
                      b" mx.example.net;" + b" " * MAX_VALUE_BYTES):
            self.assertIsNone(authserv_id_of(value), value)

    def test_ours_includes_the_unreadable(self) -> None:
        self.assertTrue(is_ours(AR, b' "mx.example.net."; dkim=pass', "mx.example.net"))
        self.assertTrue(is_ours(AR, b" (unterminated mx.example.net; dkim=pass", "mx.example.net"))
        self.assertTrue(is_ours(b"authentication-results ", b" x" * MAX_VALUE_BYTES, "mx.example.net"))
        self.assertFalse(is_ours(AR, b" (mx.example.net) upstream.example; dkim=pass", "mx.example.net"))
        self.assertFalse(is_ours(b"X-Note", b" (unterminated", "mx.example.net"))
