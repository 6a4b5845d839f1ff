"""Small self-signed certificates (EC P-256) for the TLS tests, made with cryptography."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(
    hostname: str = "localhost", *, ip: str | None = None, ca: bool = False, days: int = 30
) -> tuple[bytes, bytes]:
    """
    A self-signed certificate and its key, PEM, for C{hostname} (and the
    address C{ip}), valid from a day ago for C{days} days; C{ca} marks it a
    CA (BasicConstraints), so a client can use it as its own trust root.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if ip is not None:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def cert_pem(hostname: str = "localhost") -> bytes:
    """Key then certificate, PEM, in one text (the layout of control/servercert.pem)."""
    cert, key = make_certificate(hostname)
    return key + cert


def write_cert(path: str, hostname: str = "localhost") -> bytes:
    pem = cert_pem(hostname)
    with open(path, "wb") as f:
        f.write(pem)
    return pem
