"""Shared pieces of the DKIM tests: keys made once per run, key files in a root, a dkimpy check of signatures."""

from __future__ import annotations

import os
from functools import lru_cache

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymta.dkim.keygen import PrivateKey, dns_record, public_record
from pymta.dkim.keys import SigningKey, SigningKeys, read_key
from pymta.dkim.signer import wire_form

DOMAIN = "example.com"


@lru_cache(maxsize=None)
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@lru_cache(maxsize=None)
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: PrivateKey, form: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())


def signing_keys(domain: str = DOMAIN) -> SigningKeys:
    """An rsa key (selector C{r1}) and an ed25519 key (selector C{e1}) for C{domain}."""
    return {domain: (SigningKey(domain, "r1", *read_key(pem(rsa_key()))),
                     SigningKey(domain, "e1", *read_key(pem(ed25519_key()))))}


def records(domain: str = DOMAIN) -> dict[bytes, bytes]:
    """The TXT records of L{signing_keys}, as dkimpy's dnsfunc answers them."""
    return {f"r1._domainkey.{domain}.".encode(): public_record(rsa_key()).encode(),
            f"e1._domainkey.{domain}.".encode(): public_record(ed25519_key()).encode()}


def zone_lines(domain: str = DOMAIN) -> list[str]:
    return [dns_record(domain, "r1", public_record(rsa_key())), dns_record(domain, "e1", public_record(ed25519_key()))]


def verify_all(message: bytes, domain: str = DOMAIN) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of C{message} (as stored, LF line ends)."""
    known = records(domain)
    wire = wire_form(message)
    count = sum(1 for line in wire.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
    verdicts = []
    for index in range(count):
        try:
            verdicts.append(bool(dkim.DKIM(wire).verify(index, dnsfunc=lambda name, timeout=5: known.get(name))))
        except dkim.DKIMException:
            verdicts.append(False)
    return verdicts


def write_keys(root: str, domain: str = DOMAIN) -> str:
    """The rsa and ed25519 key files under ROOT/etc/dkim (mode 0600) and control/dkimkeys naming them."""
    directory = os.path.join(root, "etc", "dkim")
    os.makedirs(directory, exist_ok=True)
    lines = []
    for selector, key in (("r1", rsa_key()), ("e1", ed25519_key())):
        path = os.path.join(directory, f"{domain}.{selector}.key")
        with open(path, "wb") as f:
            f.write(pem(key))
        os.chmod(path, 0o600)
        lines.append(f"{domain}:{selector}:{path}\n")
    os.makedirs(os.path.join(root, "control"), exist_ok=True)
    control = os.path.join(root, "control", "dkimkeys")
    with open(control, "w") as f:
        f.write("# signing keys\n" + "".join(lines))
    return control
