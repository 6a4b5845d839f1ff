"""Tests for pymta.certs."""

from __future__ import annotations

import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import ssl
from twisted.trial.unittest import SynchronousTestCase

from pymta import certs


_PEM: list[bytes] = []


def _shared_pem() -> bytes:
    """One key for the read-only tests (RSA key generation is the slow part)."""
    if not _PEM:
        _PEM.append(certs.self_signed_pem("mail.example.com"))
    return _PEM[0]


class SelfSignedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pem = _shared_pem()

    def test_san_and_cn_are_the_host(self) -> None:
        cert = x509.load_pem_x509_certificate(self.pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["mail.example.com"])
        cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
        self.assertEqual(cn, "mail.example.com")
        self.assertEqual(cert.issuer, cert.subject)

    def test_key_matches_certificate(self) -> None:
        key = serialization.load_pem_private_key(self.pem, password=None)
        cert = x509.load_pem_x509_certificate(self.pem)
        self.assertEqual(
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        )

    def test_twisted_loads_it_as_a_server_certificate(self) -> None:
        private = ssl.PrivateCertificate.loadPEM(self.pem)
        self.assertEqual(private.getSubject().commonName, b"mail.example.com")
        options = private.options()
        self.assertIsNotNone(options.getContext())

    def test_validity_is_current(self) -> None:
        import datetime

        cert = x509.load_pem_x509_certificate(self.pem)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(cert.not_valid_before_utc, now)
        self.assertGreater(cert.not_valid_after_utc, now + datetime.timedelta(days=3000))

    def test_ip_literal_host(self) -> None:
        cert = x509.load_pem_x509_certificate(certs.self_signed_pem("[127.0.0.1]"))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual([str(a) for a in san.get_values_for_type(x509.IPAddress)], ["127.0.0.1"])

    def test_empty_host_refused(self) -> None:
        self.assertRaises(ValueError, certs.self_signed_pem, "")


class WriteSelfSignedTests(SynchronousTestCase):
    def test_mode_0600_and_never_replaced(self) -> None:
        base = self.mktemp()
        os.mkdir(base)
        path = os.path.join(base, "servercert.pem")
        self.assertTrue(certs.write_self_signed(path, "h.example"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            first = f.read()
        self.assertIn(b"BEGIN RSA PRIVATE KEY", first)
        self.assertIn(b"BEGIN CERTIFICATE", first)
        self.assertFalse(certs.write_self_signed(path, "other.example"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(os.listdir(base), ["servercert.pem"])
