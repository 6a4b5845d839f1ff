"""The Authentication-Results text, our authserv-id, control/senderauth and control/resolvers."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.resolvers import configured_nameservers, make_resolver
from pymta.senderauth.header import authentication_results, authserv_id_of, is_ours
from pymta.senderauth.settings import SenderAuthSettings, sender_auth_settings
from pymta.senderauth.verdict import Verdict
from tests.smtpd.helpers import make_root


class HeaderTests(SynchronousTestCase):
    def test_text(self) -> None:
        text = authentication_results("mx.example.net", [
            Verdict("spf", "pass", "", (("smtp.mailfrom", "example.com"),)),
            Verdict("dkim", "fail", "body hash did not verify", (("header.d", "example.com"), ("header.s", "sel"))),
            Verdict("dmarc", "fail", "", (("header.from", "example.com"),), "p=reject"),
        ])
        self.assertEqual(text, b"Authentication-Results: mx.example.net;\n"
                               b"\tspf=pass smtp.mailfrom=example.com;\n"
                               b"\tdkim=fail reason=\"body hash did not verify\" header.d=example.com header.s=sel;\n"
                               b"\tdmarc=fail (p=reject) header.from=example.com\n")
        self.assertEqual(authentication_results("mx.example.net", []), b"Authentication-Results: mx.example.net; none\n")

    def test_authserv_id(self) -> None:
        self.assertEqual(authserv_id_of(b" (forged) MX.Example.NET 1;\n\tspf=pass"), "mx.example.net")
        self.assertEqual(authserv_id_of(b"mx.example.net; none"), "mx.example.net")
        self.assertTrue(is_ours(b"Authentication-Results", b" mx.example.net; dkim=pass", "mx.example.net"))
        self.assertFalse(is_ours(b"Authentication-Results", b" mx.example.net.evil; dkim=pass", "mx.example.net"))
        self.assertFalse(is_ours(b"X-Authentication-Results", b" mx.example.net; dkim=pass", "mx.example.net"))


class SettingsTests(SynchronousTestCase):
    def settings(self, text: str | None) -> SenderAuthSettings:
        root = make_root(self.mktemp(), **({} if text is None else {"senderauth": text}))
        return sender_auth_settings(load_controls(root))

    def test_off_when_absent(self) -> None:
        self.assertEqual(self.settings(None), SenderAuthSettings())

    def test_keywords(self) -> None:
        self.assertEqual(self.settings("# sender checks\ncheck\nreject-spf-fail\nreject-dmarc\ntimeout 3.5"),
                         SenderAuthSettings(True, True, True, 3.5))
        self.assertEqual(self.settings("check"), SenderAuthSettings(check=True))

    def test_errors_name_the_line(self) -> None:
        for text, line in (("check\nbogus", 2), ("check\ncheck", 2), ("reject-dmarc", 1), ("check\ntimeout 0", 2),
                           ("check\ntimeout x", 2), ("check on", 1), ("", 1)):
            with self.assertRaises(ControlError, msg=text) as caught:
                self.settings(text)
            self.assertEqual(caught.exception.lineno, line, text)
            self.assertIn("senderauth", caught.exception.path)


class ResolversTests(SynchronousTestCase):
    def nameservers(self, text: str | None) -> tuple[tuple[str, int], ...] | None:
        root = make_root(self.mktemp(), **({} if text is None else {"resolvers": text}))
        return configured_nameservers(load_controls(root))

    def test_servers(self) -> None:
        self.assertIsNone(self.nameservers(None))
        self.assertEqual(self.nameservers("127.0.0.1:5353\n# backup\n[::1]:53\n192.0.2.53"),
                         (("127.0.0.1", 5353), ("::1", 53), ("192.0.2.53", 53)))
        resolver = make_resolver((("127.0.0.1", 5353),))
        self.assertEqual([str(n) for n in resolver.nameservers], ["Do53:127.0.0.1@5353"])
        self.assertIsNotNone(resolver.cache)

    def test_errors(self) -> None:
        for text, line in (("127.0.0.1\nns.example.net", 2), ("", 1), ("127.0.0.1:99999", 1)):
            with self.assertRaises(ControlError, msg=text) as caught:
                self.nameservers(text)
            self.assertEqual(caught.exception.lineno, line)
            self.assertEqual(os.path.basename(caught.exception.path), "resolvers")
