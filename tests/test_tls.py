"""pymta.tls: one PEM with key, certificate and chain; reload keeps the old certificate on errors."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import MemoryReactor
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pymta.tls import (
    ServerTLS,
    TLSConfigError,
    cert_path,
    check_server_endpoint,
    implicit_tls_port,
    load_server_options,
    server_listener,
)
from tests.smtpd.tlsutil import cert_pem


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def chain_pem() -> bytes:
    """CA certificate, then the leaf's key, then the leaf: order in the file must not matter."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("ca")).issuer_name(_name("ca")).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(_name("mx")).issuer_name(_name("ca")).public_key(key.public_key())
        .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(ca_key, hashes.SHA256())
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
        + leaf.public_bytes(serialization.Encoding.PEM)
    )


class LoadTests(SynchronousTestCase):
    def write(self, data: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_key_and_certificate(self) -> None:
        options = load_server_options(self.write(cert_pem()))
        self.assertIsInstance(options.getContext(), SSL.Context)

    def test_chain_any_order(self) -> None:
        options = load_server_options(self.write(chain_pem()))
        self.assertEqual(options.certificate.get_subject().CN, "mx")
        self.assertEqual([c.get_subject().CN for c in options.extraCertChain], ["ca"])

    def test_errors(self) -> None:
        key_only = cert_pem().split(b"-----BEGIN CERTIFICATE-----")[0]
        cert_only = b"-----BEGIN CERTIFICATE-----" + cert_pem().split(b"-----BEGIN CERTIFICATE-----")[1]
        mismatched = key_only + cert_only
        for data, text in (
            (key_only, "no certificate"),
            (cert_only, "no private key"),
            (mismatched, "no certificate matches"),
            (b"garbage", "no private key"),
        ):
            with self.assertRaises(TLSConfigError) as cm:
                load_server_options(self.write(data))
            self.assertIn(text, str(cm.exception))
        with self.assertRaises(TLSConfigError):
            load_server_options("/nonexistent/servercert.pem")

    def test_minimum_tls12(self) -> None:
        options = load_server_options(self.write(cert_pem()))
        self.assertTrue(options._options & SSL.OP_NO_TLSv1_1)
        self.assertTrue(options._options & SSL.OP_NO_TLSv1)
        self.assertFalse(options._options & SSL.OP_NO_TLSv1_2)


class ReloadTests(SynchronousTestCase):
    def test_reload(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(cert_pem("one"))
        tls = ServerTLS(path)
        self.assertTrue(tls.available)
        first = tls.getContext()
        with open(path, "wb") as f:
            f.write(b"broken")
        self.assertRaises(TLSConfigError, tls.reload)
        self.assertIs(tls.getContext(), first)
        with open(path, "wb") as f:
            f.write(cert_pem("two"))
        tls.reload()
        self.assertIsNot(tls.getContext(), first)

    def test_absent(self) -> None:
        tls = ServerTLS("/nonexistent/servercert.pem")
        self.assertFalse(tls.available)
        self.assertRaises(TLSConfigError, tls.getContext)


class ImplicitTLSPortTests(SynchronousTestCase):
    def test_ssl_without_key_files_becomes_tcp(self) -> None:
        self.assertEqual(implicit_tls_port("ssl:465"), "tcp:465")
        self.assertEqual(implicit_tls_port("ssl:995:interface=127.0.0.1"), "tcp:995:interface=127.0.0.1")

    def test_own_key_files_and_other_endpoints_are_left_alone(self) -> None:
        self.assertIsNone(implicit_tls_port("ssl:465:privateKey=key.pem"))
        self.assertIsNone(implicit_tls_port("ssl:465:certKey=cert.pem:privateKey=key.pem"))
        self.assertIsNone(implicit_tls_port("tcp:25"))
        self.assertIsNone(implicit_tls_port("unix:/run/smtp.sock"))

    def test_cert_path(self) -> None:
        self.assertEqual(cert_path("/var/pymta"), "/var/pymta/control/servercert.pem")


class ServerListenerTests(SynchronousTestCase):
    def tls(self) -> ServerTLS:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(cert_pem())
        return ServerTLS(path)

    def listen(self, description: str, tls: ServerTLS) -> tuple[MemoryReactor, ServerFactory, object]:
        reactor = MemoryReactor()
        factory = ServerFactory()
        listener = server_listener(reactor, description, factory, tls)
        self.assertTrue(listener._raiseSynchronously)
        listener.privilegedStartService()
        self.addCleanup(listener.stopService)
        port, bound_factory = reactor.tcpServers[0][:2]
        self.assertEqual(port, 2525)
        return reactor, factory, bound_factory

    def test_plain_endpoint_keeps_the_factory(self) -> None:
        _, factory, bound = self.listen("tcp:2525:interface=127.0.0.1", ServerTLS("/nonexistent/servercert.pem"))
        self.assertIs(bound, factory)

    def test_implicit_tls_wraps_the_factory(self) -> None:
        tls = self.tls()
        _, factory, bound = self.listen("ssl:2525:interface=127.0.0.1", tls)
        self.assertIsInstance(bound, TLSMemoryBIOFactory)
        self.assertIs(bound.wrappedFactory, factory)

    def test_implicit_tls_without_certificate_is_refused(self) -> None:
        tls = ServerTLS("/nonexistent/servercert.pem")
        with self.assertRaises(TLSConfigError) as cm:
            server_listener(MemoryReactor(), "ssl:2525", ServerFactory(), tls)
        self.assertIn("/nonexistent/servercert.pem", str(cm.exception))


class CheckServerEndpointTests(SynchronousTestCase):
    def test_good(self) -> None:
        for description in ("tcp:2525", "tcp:2525:interface=127.0.0.1", "ssl:465", "unix:/tmp/x.sock"):
            check_server_endpoint(MemoryReactor(), description)

    def test_bad_names_the_string_given(self) -> None:
        for description in (
            "nonsense:1",
            "tcp:notaport",
            "ssl:465:bogus=1",
            "ssl:465:privateKey=/nonexistent/key.pem",
            "ssl:465:certKey=/nonexistent/cert.pem",
            "haproxy:haproxy:tcp:2525",  # Twisted's own wrapper inside ours would believe any header
        ):
            with self.assertRaises(usage.UsageError) as cm:
                check_server_endpoint(MemoryReactor(), description)
            self.assertIn(f"bad endpoint {description!r}: ", str(cm.exception))
