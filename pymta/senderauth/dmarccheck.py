# -*- test-case-name: tests.senderauth.test_dmarccheck -*-
"""
DMARC (RFC 7489): does an SPF or DKIM pass align with the From domain,
and what does that domain's policy say.

Policy discovery (section 6.6.3): the one C{v=DMARC1} record at
C{_dmarc.} of the From domain, else at C{_dmarc.} of its organisational
domain (L{pymta.senderauth.orgdomain}), whose C{sp=} (else C{p=}) then
applies.  Two records at one name count as none.  The record's tags are
parsed by authheaders.  Alignment (section 3.1) is relaxed (same
organisational domain) unless C{aspf=s} / C{adkim=s} ask for the same
domain.  (authheaders' own alignment is not used: it cuts the MAIL FROM
domain at the first hyphen and reads the suffix list at every call.)

Results: C{pass}; C{fail} (a policy exists and nothing aligned);
C{none} (no policy record, no From address); C{permerror} (a malformed
record, a C{p=} that is not none/quarantine/reject, a From address
without a domain); C{temperror} (DNS did not answer).  With several From
domains each is evaluated and a failure wins.  C{pct=} is not applied: a
failure is reported as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Sequence

from authheaders.dmarc_lookup import DMARCException, answer_to_dict

from pymta.senderauth.lookups import DNSLookups, LookupTemporary
from pymta.senderauth.orgdomain import org_domain
from pymta.senderauth.verdict import FAIL, NONE, PASS, PERMERROR, TEMPERROR, Verdict

__all__ = ["DMARCVerdict", "check_dmarc", "from_domains", "POLICIES"]

POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class DMARCVerdict:
    """The verdict, and the policy that applies to the From domain (C{none}, C{quarantine}, C{reject} or C{""})."""

    verdict: Verdict
    policy: str = ""


class _BadRecord(Exception):
    pass


def from_domains(message: bytes) -> list[str] | None:
    """The domains of the From field's addresses (in order, once each); None when an address has no domain."""
    header = message.split(b"\n\n", 1)[0] + b"\n\n"
    values = [str(v) for v in BytesHeaderParser(policy=compat32).parsebytes(header).get_all("from", [])]
    domains: list[str] = []
    for _name, address in getaddresses(values):
        domain = address.rpartition("@")[2].strip().rstrip(".").lower()
        if "@" not in address or not domain:
            return None
        if domain not in domains:
            domains.append(domain)
    return domains


def _record(lookups: DNSLookups, domain: str) -> dict[str, str] | None:
    """The tags of the one DMARC record at C{_dmarc.domain}, or None; L{_BadRecord} when it is malformed."""
    records = [r for r in lookups.txt(f"_dmarc.{domain}") if r[:8].lower() == b"v=dmarc1"]
    if len(records) != 1:
        return None
    try:
        tags: dict[str, str] = answer_to_dict(records[0].decode("utf-8", "replace"))
    except DMARCException as e:
        raise _BadRecord(str(e)) from None
    return tags


def _policy(lookups: DNSLookups, domain: str) -> tuple[dict[str, str], str] | None:
    """The record that applies to C{domain} and its policy, or None (no record); L{_BadRecord}."""
    tags, tag = _record(lookups, domain), "p"
    org = org_domain(domain)
    if tags is None and org != domain:
        tags, tag = _record(lookups, org), "sp"
    if tags is None:
        return None
    policy = tags.get(tag, tags.get("p", "")) if tag == "sp" else tags.get("p", "")
    if policy not in POLICIES:
        raise _BadRecord(f"p={policy!r} is not none, quarantine or reject")
    return tags, policy


def _aligned(domain: str, other: str, mode: str) -> bool:
    other = other.rstrip(".").lower()
    return other == domain or (mode != "s" and org_domain(other) == org_domain(domain))


def _one(lookups: DNSLookups, domain: str, spf: Verdict, spf_domain: str, dkims: Sequence[Verdict]) -> DMARCVerdict:
    props = (("header.from", domain),)
    try:
        found = _policy(lookups, domain)
    except LookupTemporary as e:
        return DMARCVerdict(Verdict("dmarc", TEMPERROR, f"policy lookup: {e}"[:200], props))
    except _BadRecord as e:
        return DMARCVerdict(Verdict("dmarc", PERMERROR, f"malformed policy record: {e}"[:200], props))
    if found is None:
        return DMARCVerdict(Verdict("dmarc", NONE, "no policy published", props))
    tags, policy = found
    spf_ok = spf.result == PASS and bool(spf_domain) and _aligned(domain, spf_domain, tags.get("aspf", "r"))
    dkim_ok = any(v.result == PASS and _aligned(domain, v.value("header.d") or "", tags.get("adkim", "r")) for v in dkims)
    return DMARCVerdict(Verdict("dmarc", PASS if spf_ok or dkim_ok else FAIL, "", props, f"p={policy}"), policy)


def check_dmarc(lookups: DNSLookups, message: bytes, spf: Verdict, spf_domain: str, dkims: Sequence[Verdict]) -> DMARCVerdict:
    """
    DMARC of C{message} given the SPF verdict of C{spf_domain} (the MAIL
    FROM domain, or the HELO name for a null sender) and the DKIM verdicts.
    Blocking: runs on a worker thread.
    """
    domains = from_domains(message)
    if domains is None:
        return DMARCVerdict(Verdict("dmarc", PERMERROR, "From address without a domain"))
    if not domains:
        return DMARCVerdict(Verdict("dmarc", NONE, "no From address"))
    verdicts = [_one(lookups, domain, spf, spf_domain, dkims) for domain in domains]
    for result in (FAIL, TEMPERROR, PERMERROR):
        for found in verdicts:
            if found.verdict.result == result:
                return found
    return verdicts[0]
