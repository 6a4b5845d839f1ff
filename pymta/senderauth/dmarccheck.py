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
domains (the first L{MAX_FROM_DOMAINS}) each is evaluated and a failure
wins.  A failure under C{p=reject} outside the C{pct=} sample counts as
C{p=quarantine} (section 6.6.4).  A DKIM C{temperror} of a signature that
would align turns a failure into C{temperror}; a message whose
signatures were not verified (too large) is C{none} unless SPF aligns.

The verifier asks for the policies (L{find_policies}) before any DKIM
key, then L{judge}s; L{check_dmarc} does both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Callable, Sequence

from authheaders.dmarc_lookup import DMARCException, answer_to_dict

from pymta.senderauth.lookups import DNSLookups, LookupTemporary
from pymta.senderauth.orgdomain import org_domain
from pymta.senderauth.verdict import FAIL, NONE, PASS, PERMERROR, TEMPERROR, Verdict

__all__ = ["DMARCVerdict", "DomainPolicy", "check_dmarc", "find_policies", "judge", "aligned_domains", "sampled",
           "from_domains", "POLICIES", "MAX_FROM_DOMAINS"]

POLICIES = ("none", "quarantine", "reject")
#: the From domains whose policy is looked up
MAX_FROM_DOMAINS = 4


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


@dataclass(frozen=True)
class DomainPolicy:
    """What policy discovery found for one From domain: the record's tags and policy, or an error verdict."""

    domain: str
    tags: dict[str, str] | None = None
    policy: str = ""
    error: Verdict | None = None


def find_policies(lookups: DNSLookups, domains: Sequence[str]) -> list[DomainPolicy]:
    """The policy of each From domain (asked before anything else, so no other question can spend its time)."""
    found = []
    for domain in domains[:MAX_FROM_DOMAINS]:
        props = (("header.from", domain),)
        try:
            policy = _policy(lookups, domain)
        except LookupTemporary as e:
            found.append(DomainPolicy(domain, error=Verdict("dmarc", TEMPERROR, f"policy lookup: {e}"[:200], props)))
        except _BadRecord as e:
            found.append(DomainPolicy(domain, error=Verdict("dmarc", PERMERROR, f"malformed policy record: {e}"[:200], props)))
        else:
            found.append(DomainPolicy(domain) if policy is None else DomainPolicy(domain, policy[0], policy[1]))
    return found


def aligned_domains(policies: Sequence[DomainPolicy]) -> set[str]:
    """The organisational domains a DKIM C{d=} may have to count for DMARC (its signatures are verified first)."""
    return {org_domain(p.domain) for p in policies if p.tags is not None}


def _pct(tags: dict[str, str]) -> int:
    try:
        return min(100, max(0, int(tags.get("pct", "100"))))
    except ValueError:
        return 100


def sampled(pct: int) -> bool:
    """RFC 7489 section 6.6.4: is this message one of the C{pct} percent the policy applies to."""
    return random.randrange(100) < pct


def _one(found: DomainPolicy, spf: Verdict, spf_domain: str, dkims: Sequence[Verdict], dkim_checked: bool,
         sample: Callable[[int], bool]) -> DMARCVerdict:
    props = (("header.from", found.domain),)
    if found.error is not None:
        return DMARCVerdict(found.error)
    if found.tags is None:
        return DMARCVerdict(Verdict("dmarc", NONE, "no policy published", props))
    tags, policy = found.tags, found.policy
    comment = f"p={policy}"
    spf_ok = spf.result == PASS and bool(spf_domain) and _aligned(found.domain, spf_domain, tags.get("aspf", "r"))
    aligned = [v for v in dkims if _aligned(found.domain, v.value("header.d") or "", tags.get("adkim", "r"))]
    if spf_ok or any(v.result == PASS for v in aligned):
        return DMARCVerdict(Verdict("dmarc", PASS, "", props, comment), policy)
    if not dkim_checked:
        return DMARCVerdict(Verdict("dmarc", NONE, "DKIM not verified: message too large", props, comment), policy)
    if any(v.result == TEMPERROR for v in aligned):
        return DMARCVerdict(Verdict("dmarc", TEMPERROR, "aligned DKIM key lookup did not answer", props, comment), policy)
    pct = _pct(tags)
    if policy == "reject" and pct < 100 and not sample(pct):
        policy, comment = "quarantine", f"p=reject pct={pct}: not sampled"
    return DMARCVerdict(Verdict("dmarc", FAIL, "", props, comment), policy)


def judge(policies: Sequence[DomainPolicy], spf: Verdict, spf_domain: str, dkims: Sequence[Verdict],
          dkim_checked: bool = True, sample: Callable[[int], bool] = sampled) -> DMARCVerdict:
    """
    The verdict given each From domain's policy, the SPF verdict of
    C{spf_domain} and the DKIM verdicts (C{dkim_checked} False: the
    message was not verified, and only an aligned SPF pass can decide).
    A DKIM C{temperror} of an aligned signature makes a failure
    C{temperror}.  With several From domains a failure wins.
    """
    verdicts = [_one(found, spf, spf_domain, dkims, dkim_checked, sample) for found in policies]
    for result in (FAIL, TEMPERROR, PERMERROR):
        for verdict in verdicts:
            if verdict.verdict.result == result:
                return verdict
    return verdicts[0]


def check_dmarc(lookups: DNSLookups, message: bytes, spf: Verdict, spf_domain: str, dkims: Sequence[Verdict],
                dkim_checked: bool = True) -> DMARCVerdict:
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
    return judge(find_policies(lookups, domains), spf, spf_domain, dkims, dkim_checked)
