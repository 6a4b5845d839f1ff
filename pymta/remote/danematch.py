# -*- test-case-name: tests.remote.test_danematch -*-
"""
Does a server's certificate chain match its TLSA records? (RFC 7672, RFC 7671)

A L{TLSARecord} is one published record: usage, selector, matching type and
the association data.  For SMTP only two usages can be used (L{usable}):

  - DANE-EE (3): the server's own certificate (selector 0) or public key
    (selector 1) matches.  Its names and dates are not checked: the DNSSEC
    signature over the record is what vouches for it.
  - DANE-TA (2): a certificate the server sent above its own (selector 0) or
    its public key (selector 1) matches, the chain from the server's
    certificate up to it verifies (signatures, dates, CA flags), and the
    server's certificate carries one of the reference names (the MX host
    name, the recipient domain).  A full certificate published with
    matching type 0 may also be a trust anchor the server does not send.

PKIX-TA (0) and PKIX-EE (1) records are not usable for SMTP (RFC 7672
section 3.1.3), nor are selectors or matching types other than 0, 1, 2.

L{check_chain} says why a chain does not match (a text) or None when it does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname

__all__ = ["DANE_TA", "DANE_EE", "NO_MATCH", "TLSARecord", "usable", "association", "check_chain"]

DANE_TA = 2
DANE_EE = 3

#: why a chain fails when no record names any certificate of it
NO_MATCH = "no TLSA record matches its certificate"

_SELECTORS = (0, 1)
_MATCHING = (0, 1, 2)


@dataclass(frozen=True)
class TLSARecord:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes


def usable(record: TLSARecord) -> bool:
    """True for DANE-TA and DANE-EE records with a selector and matching type pymta knows."""
    return record.usage in (DANE_TA, DANE_EE) and record.selector in _SELECTORS and record.mtype in _MATCHING


def association(cert: x509.Certificate, selector: int, mtype: int) -> bytes:
    """The association data of C{cert}: its DER (selector 0) or SubjectPublicKeyInfo (1), as is or hashed."""
    if selector == 0:
        content = cert.public_bytes(Encoding.DER)
    else:
        content = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if mtype == 1:
        return hashlib.sha256(content).digest()
    if mtype == 2:
        return hashlib.sha512(content).digest()
    return content


def _matches(cert: x509.Certificate, record: TLSARecord) -> bool:
    return association(cert, record.selector, record.mtype) == record.data


def check_chain(chain: Sequence[x509.Certificate], records: Sequence[TLSARecord], names: Sequence[str]) -> str | None:
    """
    None when C{chain} (the server's certificate first, then what it sent
    with it) matches one of the usable C{records}; else why not.  C{names}
    are the reference names for DANE-TA (the MX host name first).
    """
    if not chain:
        return "no certificate"
    records = [r for r in records if usable(r)]
    leaf = chain[0]
    if any(r.usage == DANE_EE and _matches(leaf, r) for r in records):
        return None
    reason = NO_MATCH
    for record in (r for r in records if r.usage == DANE_TA):
        anchor = _anchor(chain, record)
        if anchor is None:
            continue
        problem = _verify_to_anchor(chain, anchor)
        if problem is None:
            problem = _name_problem(leaf, names)
            if problem is None:
                return None
        reason = problem
    return reason


def _anchor(chain: Sequence[x509.Certificate], record: TLSARecord) -> tuple[int, x509.Certificate] | None:
    """(position in the chain, certificate) of the trust anchor C{record} names; position len(chain) when not sent."""
    for position, cert in enumerate(chain[1:], start=1):
        if _matches(cert, record):
            return position, cert
    if record.selector == 0 and record.mtype == 0:
        try:
            return len(chain), x509.load_der_x509_certificate(record.data)
        except ValueError:
            return None
    return None


def _verify_to_anchor(chain: Sequence[x509.Certificate], anchor: tuple[int, x509.Certificate]) -> str | None:
    """OpenSSL's path check from the leaf up to the anchor, trusted as is (a partial chain)."""
    position, cert = anchor
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(cert))
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    between = [crypto.X509.from_cryptography(c) for c in chain[1:position]]
    context = crypto.X509StoreContext(store, crypto.X509.from_cryptography(chain[0]), chain=between)
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as e:
        return f"its certificate does not chain to the TLSA trust anchor ({e})"
    return None


def _name_problem(leaf: x509.Certificate, names: Sequence[str]) -> str | None:
    for name in names:
        try:
            verify_certificate_hostname(leaf, name)
        except (VerificationError, CertificateError, ValueError):
            continue
        return None
    return f"its certificate names none of {', '.join(names)}"
