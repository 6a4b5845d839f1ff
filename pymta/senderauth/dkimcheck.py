# -*- test-case-name: tests.senderauth.test_dkimcheck -*-
"""
DKIM (RFC 6376) signatures of a message, with dkimpy.

Each C{DKIM-Signature} (at most L{MAX_SIGNATURES}, topmost first) gets a
verdict: C{pass}; C{fail} when the signature or the body hash does not
verify; C{permerror} for a signature that cannot be checked (a malformed
or incomplete field, no key published, a malformed or too small key);
C{temperror} when the key's lookup timed out.  A message without a
signature gets one C{none}.  The key is asked through L{DNSLookups}.
One C{dkim.DKIM} (the message parsed once) verifies every signature.
"""

from __future__ import annotations

from typing import Any, Callable, Container

import dkim

from pymta.senderauth.lookups import DNSLookups, LookupTemporary
from pymta.senderauth.orgdomain import org_domain
from pymta.senderauth.verdict import FAIL, NONE, PASS, PERMERROR, TEMPERROR, Verdict

__all__ = ["check_dkim", "MAX_SIGNATURES", "MIN_KEY_BITS"]

MAX_SIGNATURES = 8
MIN_KEY_BITS = 1024


class _KeyLookup:
    """dkimpy's C{dnsfunc}: the key record (the TXT record starting with C{v=DKIM1}, else the first)."""

    def __init__(self, lookups: DNSLookups) -> None:
        self.lookups = lookups
        self.last: bytes | None = None

    def __call__(self, name: Any, timeout: float = 5) -> bytes | None:
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        records = self.lookups.txt(str(name))
        keys = [r for r in records if r.lstrip().lower().startswith(b"v=dkim1")] or records
        self.last = keys[0] if keys else None
        return self.last


def _signature_tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(dkim.util.parse_tag_value(value))
    except Exception:  # any malformed field: the verification reports it
        return {}


def _properties(tags: dict[bytes, bytes]) -> tuple[tuple[str, str], ...]:
    props = []
    for tag, prop in ((b"d", "header.d"), (b"s", "header.s")):
        value = tags.get(tag, b"").decode("ascii", "replace").strip()
        if value and all(c.isalnum() or c in "-._" for c in value):
            props.append((prop, value))
    return tuple(props)


def _no_key_reason(key: _KeyLookup, name: str) -> str | None:
    """Why a signature that did not verify has no usable key, or None when the key was fine."""
    if key.last is None:
        return f"no key published at {name}"
    try:
        dkim.evaluate_pk(name, key.last)
    except dkim.DKIMException as e:
        return f"bad key at {name}: {e}"
    return None


def _verify_one(signer: dkim.DKIM, tags: dict[bytes, bytes], index: int, lookups: DNSLookups) -> Verdict:
    props = _properties(tags)
    key = _KeyLookup(lookups)
    try:
        ok = signer.verify(idx=index, dnsfunc=key)
    except LookupTemporary as e:
        return Verdict("dkim", TEMPERROR, f"key lookup: {e}"[:200], props)
    except dkim.ValidationError as e:
        if str(e).startswith("body hash mismatch"):
            return Verdict("dkim", FAIL, "body hash did not verify", props)
        return Verdict("dkim", PERMERROR, str(e)[:200], props)
    except dkim.DKIMException as e:
        return Verdict("dkim", PERMERROR, str(e)[:200], props)
    if ok:
        return Verdict("dkim", PASS, "", props)
    name = b"%s._domainkey.%s" % (tags.get(b"s", b"?"), tags.get(b"d", b"?"))
    no_key = _no_key_reason(key, name.decode("ascii", "replace"))
    if no_key is not None:
        return Verdict("dkim", PERMERROR, no_key, props)
    return Verdict("dkim", FAIL, "signature did not verify", props)


def _first(tags: dict[bytes, bytes], orgs: Container[str]) -> bool:
    domain = tags.get(b"d", b"").decode("ascii", "replace").strip().rstrip(".").lower()
    return bool(domain) and org_domain(domain) in orgs


def check_dkim(lookups: DNSLookups, message: bytes, aligned: Container[str] = (),
               per_signature: Callable[[], DNSLookups] | None = None) -> list[Verdict]:
    """
    One verdict per signature of C{message} (the message as stored, LF
    line ends), or one C{none}.  Blocking: runs on a worker thread; a
    lookup that did not answer (L{LookupTemporary}) is that signature's
    C{temperror}.

    Signatures whose C{d=} has an organisational domain in C{aligned}
    (those that can count for DMARC) are verified first, then the others
    from the top, L{MAX_SIGNATURES} in all; the verdicts are in the
    header's order.  C{per_signature} makes each signature's own
    L{DNSLookups} (its own time limit); without it all use C{lookups}.
    """
    try:
        signer = dkim.DKIM(message, minkey=MIN_KEY_BITS)
    except dkim.DKIMException as e:
        return [Verdict("dkim", PERMERROR, f"message cannot be parsed: {e}"[:200])]
    fields = [_signature_tags(value) for name, value in signer.headers if name.lower() == b"dkim-signature"]
    if not fields:
        return [Verdict("dkim", NONE, "message not signed")]
    order = sorted(range(len(fields)), key=lambda index: not _first(fields[index], aligned))[:MAX_SIGNATURES]
    verdicts = {}
    for index in order:
        verdicts[index] = _verify_one(signer, fields[index], index, per_signature() if per_signature else lookups)
    return [verdicts[index] for index in sorted(verdicts)]
