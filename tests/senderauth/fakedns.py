"""A fake L{pymta.senderauth.lookups.DNSLookups} from zone-like text, a DKIM key pair, and signing."""

from __future__ import annotations

from typing import Any

import dkim
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pymta.senderauth.lookups import LookupTemporary


class FakeLookups:
    """C{records}: (name, type) -> list of rdata texts; names under C{silent} time out."""

    def __init__(self, records: dict[tuple[str, str], list[str]], silent: tuple[str, ...] = ()) -> None:
        self._records = {(n.lower(), t): v for (n, t), v in records.items()}
        self.silent = silent
        self.asked: list[tuple[str, str]] = []

    def records(self, name: str, rdtype: str) -> list[Any]:
        name = name.rstrip(".").lower()
        self.asked.append((name, rdtype))
        if any(name == s or name.endswith("." + s) for s in self.silent):
            raise LookupTemporary(f"{rdtype} {name}: DNS timed out")
        texts = self._records.get((name, rdtype), [])
        kind = dns.rdatatype.from_text(rdtype)
        return [dns.rdata.from_text(dns.rdataclass.IN, kind, text) for text in texts]

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.records(name, "TXT")]


def txt(text: str) -> str:
    """A TXT rdata text: strings of at most 255 bytes, quoted."""
    return " ".join(f'"{text[i:i + 250]}"' for i in range(0, len(text), 250))


class Key:
    """An RSA key pair for DKIM tests (2048 bits, made once per process)."""

    _made: "Key | None" = None

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        import base64

        self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")

    @classmethod
    def get(cls) -> "Key":
        if cls._made is None:
            cls._made = Key()
        return cls._made

    def sign(self, message: bytes, domain: str, selector: str = "sel") -> bytes:
        """C{message} (LF line ends) with a DKIM-Signature field on top."""
        field = dkim.sign(message, selector.encode(), domain.encode(), self.private_pem,
                          include_headers=[b"from", b"subject", b"to"], linesep=b"\n")
        return bytes(field) + message
