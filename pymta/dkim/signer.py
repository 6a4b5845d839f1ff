# -*- test-case-name: tests.dkim.test_signer -*-
"""
The DKIM signatures of one message (dkimpy does the cryptography).

L{sign_message} takes a message as stored (LF line ends) and the loaded
keys, finds the signing domain (the domain of the one address in the one
C{From:} field) and returns one C{DKIM-Signature:} field per key of that
domain, LF line ends, to be put at the top of the message; none when the
domain has no key or the header cannot be read (no From, several From
fields or addresses, a malformed header line).

What is signed is what the receiver gets: the message as pymta's remote
delivery sends it (L{wire_form}: CRLF line ends, a bare CR a line end, a
last line without one ended).  Canonicalization relaxed/relaxed, no body
length (C{l=}).  Signed header fields (L{SIGNED_FIELDS}, current practice):
From, To, Cc, Subject, Date, Message-ID, Reply-To, In-Reply-To,
References, MIME-Version, Content-Type, Content-Transfer-Encoding and every
C{List-*} field, each as often as it is present; From once more than it is
present (oversigned), so no From can be added without breaking the
signature.
"""

from __future__ import annotations

import email.utils
import re
from typing import Iterable, Sequence

import dkim

from pymta.dkim.keys import SigningKey, SigningKeys

__all__ = ["SIGNED_FIELDS", "sign_message", "signing_domain", "signed_fields", "wire_form", "header_fields",
           "header_domain"]

SIGNED_FIELDS = frozenset({
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding",
})
_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def wire_form(message: bytes) -> bytes:
    """The message as remote delivery sends it, before dot-stuffing (L{pymta.remote.datastream})."""
    text = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text.replace(b"\n", b"\r\n")


def header_fields(message: bytes) -> list[tuple[str, bytes]]:
    """C{(lowercased name, unfolded value)} of each header field of a wire-form message, in order."""
    fields: list[tuple[str, bytes]] = []
    for line in message.split(b"\r\n"):
        if not line:
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            raise ValueError(f"not a header field: {line[:40]!r}")
        fields.append((match.group(1).decode("ascii").lower(), line[match.end():].strip()))
    return fields


def signing_domain(fields: Sequence[tuple[str, bytes]]) -> str | None:
    """The domain of the one address of the one From field, lowercased; None otherwise."""
    values = [value for name, value in fields if name == "from"]
    if len(values) != 1:
        return None
    addresses = [address for _, address in email.utils.getaddresses([values[0].decode("utf-8", "replace")]) if address]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().lower().removesuffix(".")
    return domain or None


def header_domain(header: bytes) -> str | None:
    """The signing domain of a message whose header (as stored) is C{header}; None when it has none."""
    try:
        return signing_domain(header_fields(wire_form(header)))
    except ValueError:
        return None


def signed_fields(names: Iterable[str]) -> list[bytes]:
    """The C{h=} list for a header with these field names (lowercased): see the module docstring."""
    signed: list[bytes] = []
    for name in names:
        if name in SIGNED_FIELDS or name.startswith("list-"):
            signed.append(name.encode("ascii"))
    signed.append(b"from")  # oversigned: one more than present
    return signed


def sign_message(message: bytes, keys: SigningKeys) -> tuple[bytes, ...]:
    """The C{DKIM-Signature:} fields (LF line ends) for C{message} as stored; () when none applies."""
    wire = wire_form(message)
    try:
        fields = header_fields(wire)
    except ValueError:
        return ()
    domain = signing_domain(fields)
    domain_keys = keys.get(domain, ()) if domain is not None else ()
    if not domain_keys:
        return ()
    include = signed_fields(name for name, _ in fields)
    signer = dkim.DKIM(wire, linesep=b"\n")
    return tuple(_sign(signer, key, include) for key in domain_keys)


def _sign(signer: dkim.DKIM, key: SigningKey, include: list[bytes]) -> bytes:
    field = signer.sign(key.selector.encode("ascii"), key.domain.encode("ascii"), key.private,
                        signature_algorithm=key.algorithm.encode("ascii"), canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=include)
    return bytes(field)
