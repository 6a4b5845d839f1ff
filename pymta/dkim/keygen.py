# -*- test-case-name: tests.dkim.test_keygen -*-
"""
New DKIM keys and their DNS records (C{pymta dkim keygen}).

L{generate} makes an RSA key of 2048 bits or an Ed25519 key
(cryptography); L{write_key} stores it as PEM (PKCS#8) under
C{ROOT/etc/dkim/DOMAIN.SELECTOR.key}, created exclusively (an existing
file is never overwritten), mode 0600, owned by the mail account (when run
as root).  The directory is made mode 0755 and stays its maker's (root's):
the daemons read the key but cannot put another file in its place.  An
existing directory (and the C{etc} above it) must be a real directory of
root or of the account running keygen that nobody else may write
(L{key_dir_problem}), else nothing is written.  (Not
under C{control/}: that holds control files only, each one
C{pymta check} and C{pymta showctl} know.)  L{dns_record} is the TXT record
to publish at C{SELECTOR._domainkey.DOMAIN}, in zone-file form, its text
cut into strings of at most 255 bytes (RFC 1035's limit for one string;
resolvers join them, RFC 6376 section 3.6.2.2).
"""

from __future__ import annotations

import base64
import os
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymta.dkim.keys import ED25519, RSA, read_key

__all__ = ["KEY_TYPES", "RSA_BITS", "generate", "write_key", "key_path", "public_record", "dns_record",
           "txt_strings", "record_of_private", "key_dir_problem", "UnsafeKeyDir"]

#: --type values and the algorithm each signs with
KEY_TYPES = {"rsa": RSA, "ed25519": ED25519}
RSA_BITS = 2048
KEY_DIR = "dkim"

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate(key_type: str) -> PrivateKey:
    """A new key of C{key_type} (C{rsa}: 2048 bits, C{ed25519})."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r} (rsa or ed25519)")


def key_path(root: str, domain: str, selector: str) -> str:
    """Where C{pymta dkim keygen} puts the key of C{domain} and C{selector}."""
    return os.path.join(root, "etc", KEY_DIR, f"{domain.lower()}.{selector}.key")


class UnsafeKeyDir(Exception):
    """The key directory could be changed by others than the account writing the key."""


def key_dir_problem(directory: str) -> str | None:
    """Why a key may not be written into C{directory} (or it may not stay there), or None."""
    for path in (directory, os.path.dirname(directory)):
        try:
            st = os.lstat(path)
        except OSError as e:
            return f"{path}: cannot check it: {e.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{path} is not a directory (a symbolic link?)"
        if st.st_uid not in (0, os.geteuid()):
            return f"{path} is owned by uid {st.st_uid}, neither root nor uid {os.geteuid()} who writes the key"
        if st.st_mode & 0o022:
            return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}): chmod go-w"
    return None


def write_key(path: str, key: PrivateKey, account: tuple[int, int] | None) -> None:
    """
    Write C{key} to C{path} (PEM, PKCS#8): created exclusively, mode 0600;
    L{FileExistsError} when the file exists, L{UnsafeKeyDir} when its
    directory breaks L{key_dir_problem}.  Run as root, the file is given
    to C{account} (the mail account).
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    problem = key_dir_problem(directory)
    if problem is not None:
        raise UnsafeKeyDir(problem)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if account is not None and os.geteuid() == 0:
            os.fchown(fd, *account)
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def public_record(key: PrivateKey) -> str:
    """The text of the key's DKIM record: C{v=DKIM1; k=rsa; p=...} (RFC 6376, RFC 8463)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")


def record_of_private(data: bytes) -> str:
    """The record text of a key file's bytes (PEM, or an Ed25519 base64 seed); L{ValueError} otherwise."""
    algorithm, private = read_key(data)
    if algorithm == ED25519:
        return public_record(ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(private)))
    key = serialization.load_pem_private_key(private, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return public_record(key)


def txt_strings(text: str, size: int = 255) -> list[str]:
    """C{text} cut into strings of at most C{size} bytes (the record text is ASCII)."""
    return [text[start:start + size] for start in range(0, len(text), size)] or [""]


def dns_record(domain: str, selector: str, text: str) -> str:
    """The zone-file line: C{SELECTOR._domainkey.DOMAIN. IN TXT "..." "..."}."""
    strings = " ".join(f'"{part}"' for part in txt_strings(text))
    return f"{selector}._domainkey.{domain.lower().removesuffix('.')}. IN TXT {strings}"
