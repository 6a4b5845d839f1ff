"""
Test certificates as an ACME CA issues them: a CA, leaf certificates signed
by it, and certbot's directory layout for one certificate (a "lineage":
C{live/NAME/*.pem} symbolic links into C{archive/NAME/*N.pem}).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str = "pymta test CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(ca: Issued, names: list[str], days: float = 90, starts: float = -1, rsa_key: bool = False,
          ips: tuple[str, ...] = ()) -> Issued:
    """A leaf for C{names} (and the addresses C{ips}) valid from C{starts} days from now for C{days} days."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    start = NOW + datetime.timedelta(days=starts)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def write_lineage(letsencrypt: str, name: str, leaf: Issued, ca: Issued, version: int = 1) -> str:
    """
    Lay C{leaf} out as certbot does under C{letsencrypt} (its config dir) and
    return the lineage directory C{live/NAME}, what certbot puts in
    C{RENEWED_LINEAGE}.
    """
    archive = os.path.join(letsencrypt, "archive", name)
    live = os.path.join(letsencrypt, "live", name)
    os.makedirs(archive, exist_ok=True)
    os.makedirs(live, exist_ok=True)
    files = {
        "cert": leaf.cert_pem(),
        "chain": ca.cert_pem(),
        "fullchain": leaf.cert_pem() + ca.cert_pem(),
        "privkey": leaf.key_pem(),
    }
    for kind, data in files.items():
        target = os.path.join(archive, f"{kind}{version}.pem")
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, 0o600 if kind == "privkey" else 0o644)
        link = os.path.join(live, f"{kind}.pem")
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.relpath(target, live), link)
    return live
