"""Tests for pymta.certinstall: judging an ACME client's certificate and key before installing them."""

from __future__ import annotations

import os
import stat
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial import unittest

from pymta.certinstall import (
    CertificateRefused,
    certificate_names,
    checked_server_pem,
    install_server_pem,
    name_matches,
    other_host_names,
)
from pymta.tls import load_server_options
from tests.acmecerts import NOW, make_ca, issue


class NameMatchTests(unittest.TestCase):
    def test_exact_ignoring_case_and_final_dot(self) -> None:
        self.assertTrue(name_matches("MX.Example.org", "mx.example.org."))
        self.assertFalse(name_matches("mx.example.org", "mx2.example.org"))

    def test_wildcard_covers_one_label(self) -> None:
        self.assertTrue(name_matches("*.example.org", "mx.example.org"))
        self.assertFalse(name_matches("*.example.org", "a.mx.example.org"))
        self.assertFalse(name_matches("*.example.org", "example.org"))

    def test_ip_address(self) -> None:
        self.assertTrue(name_matches("192.0.2.1", "[192.0.2.1]"))
        self.assertFalse(name_matches("192.0.2.1", "192.0.2.2"))


class OtherHostNamesTests(unittest.TestCase):
    def test_leaf_decides(self) -> None:
        ca = make_ca()
        mine, web = issue(ca, ["mx.example.org"]), issue(ca, ["www.example.org", "example.org"])
        self.assertIsNone(other_host_names(mine.cert_pem() + ca.cert_pem(), "mx.example.org"))
        self.assertEqual(other_host_names(web.cert_pem() + ca.cert_pem(), "mx.example.org"),
                         ["www.example.org", "example.org"])

    def test_unreadable_is_left_to_the_full_check(self) -> None:
        self.assertIsNone(other_host_names(b"garbage", "mx.example.org"))
        self.assertIsNone(other_host_names(b"", "mx.example.org"))


class CheckedServerPemTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ca = make_ca()

    def check(self, chain: bytes, key: bytes, hostname: str | None = "mx.example.org"):  # type: ignore[no-untyped-def]
        return checked_server_pem(chain, key, hostname, NOW, "fullchain.pem", "privkey.pem")

    def test_good_pair_gives_key_then_leaf_then_chain(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"])
        checked = self.check(leaf.cert_pem() + self.ca.cert_pem(), leaf.key_pem())
        self.assertEqual(checked.warnings, [])
        self.assertTrue(checked.pem.startswith(b"-----BEGIN PRIVATE KEY-----"))
        certs = x509.load_pem_x509_certificates(checked.pem)
        self.assertEqual(certs, [leaf.cert, self.ca.cert])
        self.assertEqual(checked.leaf, leaf.cert)

    def test_leaf_after_chain_is_put_first(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"], rsa_key=True)
        checked = self.check(self.ca.cert_pem() + leaf.cert_pem(), leaf.key_pem())
        self.assertEqual(x509.load_pem_x509_certificates(checked.pem)[0], leaf.cert)

    def test_traditional_rsa_key_format_is_read(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"], rsa_key=True)
        traditional = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())
        self.assertIn(b"RSA PRIVATE KEY", traditional)
        self.assertEqual(self.check(leaf.cert_pem(), traditional).leaf, leaf.cert)

    def test_result_loads_with_the_daemons_parser(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"])
        checked = self.check(leaf.cert_pem() + self.ca.cert_pem(), leaf.key_pem())
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(checked.pem)
            f.flush()
            options = load_server_options(f.name)
        self.assertEqual(options.certificate.to_cryptography(), leaf.cert)
        self.assertEqual([c.to_cryptography() for c in options.extraCertChain], [self.ca.cert])

    def test_key_of_another_certificate_is_refused(self) -> None:
        leaf, other = issue(self.ca, ["mx.example.org"]), issue(self.ca, ["mx.example.org"])
        with self.assertRaises(CertificateRefused) as caught:
            self.check(leaf.cert_pem(), other.key_pem())
        self.assertEqual(str(caught.exception), "fullchain.pem: no certificate in it matches the private key privkey.pem")

    def test_expired_is_refused(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"], days=10, starts=-20)
        with self.assertRaises(CertificateRefused) as caught:
            self.check(leaf.cert_pem(), leaf.key_pem())
        self.assertIn("fullchain.pem: the certificate expired on", str(caught.exception))

    def test_not_yet_valid_is_refused(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"], starts=2)
        with self.assertRaises(CertificateRefused) as caught:
            self.check(leaf.cert_pem(), leaf.key_pem())
        self.assertIn("not valid before", str(caught.exception))

    def test_garbage_is_refused_in_one_line(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"])
        for chain, key, blamed in (
            (b"not a certificate\n", leaf.key_pem(), "fullchain.pem: not PEM certificates"),
            (leaf.cert_pem()[:200], leaf.key_pem(), "fullchain.pem: "),
            (leaf.cert_pem(), b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "privkey.pem: not a PEM private key"),
            (leaf.cert_pem(), b"", "privkey.pem: not a PEM private key"),
        ):
            with self.assertRaises(CertificateRefused) as caught:
                self.check(chain, key)
            self.assertTrue(str(caught.exception).startswith(blamed), str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_encrypted_key_is_refused(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"])
        encrypted = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret"))
        with self.assertRaises(CertificateRefused) as caught:
            self.check(leaf.cert_pem(), encrypted)
        self.assertIn("encrypted", str(caught.exception))

    def test_other_names_give_a_warning(self) -> None:
        leaf = issue(self.ca, ["www.example.org", "example.org"])
        checked = self.check(leaf.cert_pem(), leaf.key_pem())
        self.assertEqual(checked.warnings, [
            "fullchain.pem: the certificate names www.example.org, example.org, not mx.example.org (control/me): "
            "senders that check the name will refuse it"])

    def test_wildcard_name_gives_no_warning(self) -> None:
        leaf = issue(self.ca, ["*.example.org"])
        self.assertEqual(self.check(leaf.cert_pem(), leaf.key_pem()).warnings, [])

    def test_no_hostname_no_name_warning(self) -> None:
        leaf = issue(self.ca, ["www.example.org"])
        self.assertEqual(self.check(leaf.cert_pem(), leaf.key_pem(), None).warnings, [])

    def test_expiring_soon_gives_a_warning(self) -> None:
        leaf = issue(self.ca, ["mx.example.org"], days=11)
        warnings = self.check(leaf.cert_pem(), leaf.key_pem()).warnings
        self.assertEqual(len(warnings), 1)
        self.assertIn("expires on", warnings[0])
        self.assertIn("in 9 days", warnings[0])

    def test_names_without_alt_names_fall_back_to_cn(self) -> None:
        cert = x509.load_pem_x509_certificate(self.ca.cert_pem())
        self.assertEqual(certificate_names(cert), ["pymta test CA"])


class InstallTests(unittest.TestCase):
    def test_replaces_with_mode_0600_and_no_temporary_left(self) -> None:
        directory = self.mktemp()
        os.mkdir(directory)
        path = os.path.join(directory, "servercert.pem")
        with open(path, "wb") as f:
            f.write(b"old")
        os.chmod(path, 0o644)
        old_inode = os.stat(path).st_ino
        owner = (os.getuid(), os.getgid()) if os.getuid() != 0 else (4242, 4243)
        install_server_pem(path, b"new", owner)
        st = os.stat(path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual((st.st_uid, st.st_gid), owner)
        self.assertNotEqual(st.st_ino, old_inode)  # renamed into place, not rewritten in place
        self.assertEqual(os.listdir(directory), ["servercert.pem"])

