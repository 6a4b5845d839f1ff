"""Certificates for the DANE tests, made with cryptography: a CA, a server certificate it signs, TLSA data."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet import ssl

from pymta.remote.danematch import TLSARecord, association


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def record(self, usage: int, selector: int = 1, mtype: int = 1) -> TLSARecord:
        return TLSARecord(usage, selector, mtype, association(self.cert, selector, mtype))

    def zone_line(self, name: str, usage: int, selector: int = 1, mtype: int = 1) -> str:
        """The TLSA record as a zone-file line."""
        return f"{name} 300 IN TLSA {usage} {selector} {mtype} {self.record(usage, selector, mtype).data.hex()}"


def issue(name: str, issuer: Issued | None = None, ca: bool = False, days: int = 2, expired: bool = False) -> Issued:
    """A certificate for C{name} signed by C{issuer} (self-signed when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=10 if expired else 1)
    end = now - datetime.timedelta(days=5) if expired else now + datetime.timedelta(days=days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def server_options(leaf: Issued, *chain: Issued) -> ssl.CertificateOptions:
    """TLS server options presenting C{leaf} and C{chain}."""
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(leaf.key),
        certificate=crypto.X509.from_cryptography(leaf.cert),
        extraCertChain=[crypto.X509.from_cryptography(c.cert) for c in chain],
    )


def pem_files(leaf: Issued, *chain: Issued) -> bytes:
    """Key, certificate and chain, PEM, in one text."""
    key = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return key + b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in (leaf, *chain))
