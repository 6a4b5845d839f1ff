# -*- test-case-name: tests.dkim.test_keys -*-
"""
C{control/dkimkeys}: the keys pymta signs with, one line per key::

    DOMAIN:SELECTOR:KEYFILE

DOMAIN is the signing domain (C{d=}): a message is signed with every key
of the domain of its C{From:} address (an rsa and an ed25519 key both
apply: two signatures).  SELECTOR is the C{s=} tag (the key's DNS record
is C{SELECTOR._domainkey.DOMAIN}); KEYFILE the private key, a path
relative to the control directory or absolute: PEM (PKCS#8 or the
traditional RSA form) of an RSA key of at least 1024 bits or of an
Ed25519 key, or an Ed25519 key as the base64 of its 32-byte seed (the form
dkimpy's C{dknewkey} writes).  C{pymta dkim keygen} writes such files and
prints the line.

L{key_entries} judges the text (what C{pymta showctl} and the control
files' checks run, as anyone); L{load_signing_keys} reads the key files,
each opened and judged by L{pymta.secretfile.read_secret_file} (mode 0600
owned by the mail account, or 0640 root and the mail account's group;
never through a link, judged on the open file).
Either raises L{ControlError} naming the file and line.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymta.control import Controls, entry_error
from pymta.hostnames import host_name_problem
from pymta.secretfile import SecretFileProblem, daemon_account, read_secret_file

__all__ = [
    "NAME", "RSA", "ED25519", "KeyEntry", "SigningKey", "SigningKeys", "key_entries", "read_key",
    "load_signing_keys", "controls_account", "selector_problem", "MIN_RSA_BITS",
]

NAME = "dkimkeys"
RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
MIN_RSA_BITS = 1024
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeyEntry:
    """One line of control/dkimkeys: domain (lowercased), selector and the key file's full path."""

    domain: str
    selector: str
    path: str


@dataclass(frozen=True)
class SigningKey:
    """A loaded key: its entry, algorithm (L{RSA} or L{ED25519}) and the private key in dkimpy's form."""

    domain: str
    selector: str
    algorithm: str
    private: bytes = field(repr=False)


#: signing domain -> its keys, in the file's order
SigningKeys = dict[str, tuple[SigningKey, ...]]


def selector_problem(selector: str) -> str | None:
    """Why C{selector} cannot be a DKIM selector (labels of letters, digits and hyphens), or None."""
    if not _SELECTOR.fullmatch(selector) or len(selector) > 63:
        return f"bad selector {selector!r}: labels of letters, digits and hyphens, joined by dots"
    return None


def key_entries(controls: Controls) -> tuple[KeyEntry, ...]:
    """The entries of control/dkimkeys (none when absent); L{ControlError} naming a bad line."""
    lines = controls.extra_lines(NAME) or []
    entries: list[KeyEntry] = []
    seen: dict[tuple[str, str], int] = {}
    for index, line in enumerate(lines):
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise entry_error(lines, index, "expected DOMAIN:SELECTOR:KEYFILE", NAME)
        domain, selector, path = (part.strip() for part in parts)
        problem = host_name_problem(domain)
        if problem is not None:
            raise entry_error(lines, index, f"bad domain: {problem}", NAME)
        problem = selector_problem(selector)
        if problem is not None:
            raise entry_error(lines, index, problem, NAME)
        if not path:
            raise entry_error(lines, index, "no key file named", NAME)
        key = (domain.lower(), selector.lower())
        if key in seen:
            raise entry_error(lines, index, f"selector {selector} of {domain} repeats entry {seen[key] + 1}", NAME)
        seen[key] = index
        entries.append(KeyEntry(domain.lower(), selector, os.path.join(controls.controldir, path)))
    return tuple(entries)


def read_key(data: bytes) -> tuple[str, bytes]:
    """
    C{(algorithm, private key in dkimpy's form)} of a key file's bytes;
    L{ValueError} saying what is wrong.  dkimpy takes RSA keys as
    traditional PEM and Ed25519 keys as the base64 of the seed.
    """
    text = data.strip()
    if not text.startswith(b"-----"):
        try:
            seed = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise ValueError("neither PEM nor a base64 Ed25519 seed") from None
        if len(seed) != 32:
            raise ValueError(f"a base64 Ed25519 seed has 32 bytes, this one {len(seed)}")
        return ED25519, base64.b64encode(seed)
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a usable PEM private key ({e})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; receivers ignore keys under {MIN_RSA_BITS}")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        return RSA, pem
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        return ED25519, base64.b64encode(seed)
    raise ValueError(f"a {type(key).__name__.removesuffix('PrivateKey').lstrip('_')} key: DKIM signs with RSA or Ed25519")


def controls_account(controls: Controls) -> tuple[int, int] | None:
    """The daemons' account of the root C{controls} belong to (L{daemon_account})."""
    return daemon_account(os.path.dirname(os.path.abspath(controls.controldir)))


def load_signing_keys(controls: Controls, account: tuple[int, int] | None = None) -> SigningKeys:
    """
    Every key of control/dkimkeys, read and checked, by domain.
    C{account}: the mail account the key files must belong to (default:
    L{controls_account}).
    """
    entries = key_entries(controls)
    if not entries:
        return {}
    if account is None:
        account = controls_account(controls)
    lines = controls.extra_lines(NAME) or []
    found: dict[str, list[SigningKey]] = {}
    for index, entry in enumerate(entries):
        problem = None
        try:
            algorithm, private = read_key(read_secret_file(entry.path, account, "the private key", _MAX_KEY_BYTES))
        except (SecretFileProblem, ValueError) as e:
            problem = str(e)
        if problem is not None:
            raise entry_error(lines, index, f"key file {entry.path}: {problem}", NAME)
        found.setdefault(entry.domain, []).append(SigningKey(entry.domain, entry.selector, algorithm, private))
    return {domain: tuple(keys) for domain, keys in found.items()}
