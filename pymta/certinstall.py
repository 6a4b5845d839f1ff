# -*- test-case-name: tests.test_certinstall -*-
"""
A certificate from an ACME client (certbot's C{fullchain.pem} and
C{privkey.pem}) turned into C{ROOT/control/servercert.pem}, the one file
pymta-smtpd and pymta-pop3d read (key, then certificate and chain).

L{checked_server_pem} judges the pair before anything is written:

  - refused (L{CertificateRefused}, one line): unreadable files, a key
    that is encrypted or matches no certificate, a certificate that has
    expired or is not valid yet, and anything the daemons' own parser
    (L{pymta.tls.server_options_from_pem}) would not load;
  - warned about (the file is still installed): names that do not include
    the host name C{control/me}, expiry within L{EXPIRY_WARNING}.

L{install_server_pem} then replaces the file atomically (temporary file
in C{control/}, fsync, mode 0600, owner, rename, directory fsync): a
daemon reading it sees the old or the new file, never part of one.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pymta.configcheck.certificate import EXPIRY_WARNING
from pymta.fsutil import replace_file
from pymta.tls import TLSConfigError, server_options_from_pem

__all__ = [
    "CertificateRefused",
    "CheckedCertificate",
    "checked_server_pem",
    "certificate_names",
    "name_matches",
    "other_host_names",
    "install_server_pem",
    "EXPIRY_WARNING",
]


class CertificateRefused(Exception):
    """The pair cannot serve: the message is one line naming the file."""


@dataclass
class CheckedCertificate:
    """What L{checked_server_pem} found: the PEM text to install, and the warnings."""

    pem: bytes
    leaf: x509.Certificate
    warnings: list[str] = field(default_factory=list)


def _public(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def _load_key(key_pem: bytes, key_path: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateRefused(f"{key_path}: the private key is encrypted; pymta needs it without a passphrase") from None
    except ValueError as e:
        raise CertificateRefused(f"{key_path}: not a PEM private key ({e})") from None


def _load_chain(chain_pem: bytes, cert_path: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as e:
        raise CertificateRefused(f"{cert_path}: not PEM certificates ({e})") from None
    if not certs:
        raise CertificateRefused(f"{cert_path}: no certificate in it")
    return certs


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of C{cert} (subjectAltName; the subject CN when it has none)."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    names: list[str] = list(alt.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    return names


def name_matches(pattern: str, hostname: str) -> bool:
    """
    True when the certificate name C{pattern} covers C{hostname}: equal
    ignoring case and a final dot, or a wildcard C{*.example.org} for
    exactly one more label (RFC 6125 section 6.4.3).
    """
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(hostname)
    except ValueError:
        pass
    if pattern == hostname:
        return True
    if pattern.startswith("*.") and "." in hostname:
        return hostname.split(".", 1)[1] == pattern[2:] and hostname.split(".", 1)[0] != ""
    return False


def other_host_names(chain_pem: bytes, hostname: str) -> list[str] | None:
    """
    The names of the first certificate in C{chain_pem} (the leaf, in an
    ACME client's full chain) when none of them covers C{hostname}; None
    when one does, or when the text cannot be read (L{checked_server_pem}
    then says why).
    """
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        return None
    if not certs:
        return None
    names = certificate_names(certs[0])
    return None if any(name_matches(n, hostname) for n in names) else names


def checked_server_pem(
    chain_pem: bytes,
    key_pem: bytes,
    hostname: str | None,
    now: datetime.datetime,
    cert_path: str = "certificate",
    key_path: str = "key",
) -> CheckedCertificate:
    """
    The C{servercert.pem} text for the pair (key, then the certificate
    matching it, then the rest of the chain in the given order), checked
    as the module docstring says; L{CertificateRefused} when it cannot serve.
    """
    key = _load_key(key_pem, key_path)
    certs = _load_chain(chain_pem, cert_path)
    mine = _public(key.public_key())
    leaf_index = next((i for i, c in enumerate(certs) if _public(c.public_key()) == mine), None)
    if leaf_index is None:
        raise CertificateRefused(f"{cert_path}: no certificate in it matches the private key {key_path}")
    leaf = certs.pop(leaf_index)
    if leaf.not_valid_after_utc <= now:
        raise CertificateRefused(f"{cert_path}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if leaf.not_valid_before_utc > now:
        raise CertificateRefused(
            f"{cert_path}: the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            "(check this machine's clock)")
    key_out = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pem = key_out + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *certs])
    try:
        server_options_from_pem(pem, cert_path).getContext()
    except (TLSConfigError, ValueError) as e:
        raise CertificateRefused(str(e)) from None
    except Exception as e:  # OpenSSL's own refusal (e.g. a key type it does not take)
        raise CertificateRefused(f"{cert_path}: OpenSSL refuses it: {e}") from None
    checked = CheckedCertificate(pem, leaf)
    names = certificate_names(leaf)
    if hostname and not any(name_matches(n, hostname) for n in names):
        checked.warnings.append(
            f"{cert_path}: the certificate names {', '.join(names) or 'nothing'}, not {hostname} (control/me): "
            "senders that check the name will refuse it")
    left = leaf.not_valid_after_utc - now
    if left < EXPIRY_WARNING:
        checked.warnings.append(f"{cert_path}: the certificate expires on "
                                f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in {left.days} days")
    return checked


def install_server_pem(path: str, pem: bytes, owner: tuple[int, int] | None) -> None:
    """Replace C{path} with C{pem} atomically (L{pymta.fsutil.replace_file}), mode 0600, owned by C{owner} when given."""
    replace_file(path, pem, 0o600, owner)
