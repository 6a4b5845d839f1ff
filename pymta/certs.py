# -*- test-case-name: tests.test_certs -*-
"""
Self-signed TLS certificates for a fresh pymta root.

C{pymta init} writes C{control/servercert.pem}: an RSA private key followed
by a self-signed certificate whose subject CN and subjectAltName are the
host name C{me}, so STARTTLS (SMTP) and STLS (POP3) work from the first
start.  Operators replace the file with a real certificate (same layout:
key then chain, PEM) when they have one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pymta.fsutil import write_new_file

__all__ = ["self_signed_pem", "write_self_signed", "DEFAULT_DAYS"]

DEFAULT_DAYS = 3650
RSA_BITS = 2048


def _alt_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname.strip("[]")))
    except ValueError:
        return x509.DNSName(hostname)


def self_signed_pem(hostname: str, days: int = DEFAULT_DAYS, now: datetime.datetime | None = None) -> bytes:
    """PEM text of a new private key and a self-signed certificate for C{hostname}."""
    if not hostname:
        raise ValueError("a certificate needs a host name")
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    start = (now or datetime.datetime.now(datetime.timezone.utc)) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_alt_name(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def write_self_signed(path: str, hostname: str, uid: int = -1, gid: int = -1, days: int = DEFAULT_DAYS) -> bool:
    """
    Create C{path} (mode 0600, owned by uid/gid) with a key and certificate
    for C{hostname}.  An existing file is never replaced: returns False then.
    The file appears complete or not at all (written under a temporary
    name, fsynced, then linked into place, and the directory fsynced).
    """
    if os.path.lexists(path):
        return False
    return write_new_file(path, self_signed_pem(hostname, days), 0o600, uid, gid)
