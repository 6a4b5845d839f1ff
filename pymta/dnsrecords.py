# -*- test-case-name: tests.test_dnsrecords -*-
"""
The DNS records a pymta host and its mail domains need, and whether what
DNS answers matches them.  Pure: no lookups here (L{pymta.cli.dns} asks
DNS and prints).

From the root's settings (L{MailSite.from_controls}):

- the MX host is C{control/me}; the HELO name is C{control/helohost}
  (default: C{me}), whose reverse record (PTR) every address of the host
  must carry, as receivers check "forward-confirmed reverse DNS";
- the mail domains are the exact domains of C{locals}, C{rcpthosts} and
  C{virtualdomains} (not C{.suffix} wildcards, virtual users, C{localhost}
  or address literals).  C{me} itself is a mail domain too unless it is a
  host under one of the others (C{mx.example.org} under C{example.org}):
  then mail to it still reaches it by its address record (RFC 5321 §5.1).
  Internationalised names are written in their ASCII (C{xn--}) form.

For each mail domain: MX, SPF C{v=spf1 mx -all} (only the MX hosts send
for it: pymta sends from the host that receives), DMARC at C{_dmarc}
(policy C{none} with aggregate reports to postmaster, to start with),
MTA-STS at C{_mta-sts} (its id is derived from the policy text, so it
changes exactly when the policy does) and TLS-RPT at C{_smtp._tls}.  For
the MX host: A/AAAA, SPF for the HELO name (C{v=spf1 a -all}, what
receivers check for bounces, whose envelope sender is empty), and the
PTR records, which only the owner of each address can publish.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name

__all__ = [
    "Record",
    "MailSite",
    "Verdict",
    "mail_domains",
    "mta_sts_policy",
    "records_for",
    "host_records",
    "reverse_records",
    "domain_records",
    "compare",
    "zone_text",
    "DMARC_POLICIES",
    "MTA_STS_MODES",
]

TTL = 3600
MX_PREFERENCE = 10
DMARC_POLICIES = ("none", "quarantine", "reject")
MTA_STS_MODES = ("testing", "enforce")
#: max_age of the MTA-STS policy: a day while testing, a week once enforced (RFC 8461 §3.2)
MTA_STS_MAX_AGE = {"testing": 86400, "enforce": 604800}

_NOT_MAIL_DOMAINS = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class Record:
    """One resource record: owner name (no final dot), type, value in zone-file form (TXT unquoted)."""

    owner: str
    rtype: str
    value: str
    #: a PTR: published by whoever owns the address, not in the domain's zone
    asked_of_address_owner: bool = False

    def zone_line(self) -> str:
        value = self.value
        if self.rtype == "TXT":
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{self.owner}. {TTL} IN {self.rtype} {value}"

    def describe(self) -> str:
        """C{OWNER TYPE VALUE}, for a line of C{pymta dns check}."""
        value = f'"{self.value}"' if self.rtype == "TXT" else self.value
        return f"{self.owner} {self.rtype} {value}"


@dataclass(frozen=True)
class MailSite:
    """What the records are made from."""

    mx_host: str
    helo_host: str
    domains: tuple[str, ...]
    addresses: tuple[str, ...] = ()
    dmarc_policy: str = "none"
    mta_sts_mode: str = "testing"

    @classmethod
    def from_controls(cls, me: str, helohost: str, locals_: Iterable[str], rcpthosts: Iterable[str] | None,
                      virtualdomains: Mapping[str, str], addresses: Sequence[str] = (),
                      dmarc_policy: str = "none", mta_sts_mode: str = "testing") -> MailSite:
        me = _name(me)
        domains = mail_domains(me, [*locals_, *(rcpthosts or ()), *virtualdomains.keys()])
        return cls(me, _name(helohost or me), domains, tuple(addresses), dmarc_policy, mta_sts_mode)


def _name(text: str) -> str:
    """A name as DNS spells it: lower case, no final dot, an internationalised name in its xn-- form."""
    text = text.strip().rstrip(".").lower()
    if text.isascii():
        return text
    try:
        return str(dns.name.from_unicode(text).to_text(omit_final_dot=True))
    except (dns.exception.DNSException, UnicodeError):
        return text  # not a usable name: _is_domain refuses it


def _is_domain(entry: str) -> bool:
    if not entry.isascii() or not entry or entry.startswith(".") or "@" in entry or entry.startswith("["):
        return False
    if entry in _NOT_MAIL_DOMAINS or "." not in entry:
        return False
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return True
    return False


def mail_domains(me: str, entries: Iterable[str]) -> tuple[str, ...]:
    """The sorted mail domains among control-file entries (see the module's description)."""
    domains = {_name(e) for e in entries if _is_domain(_name(e))}
    domains.discard(me)
    if _is_domain(me) and not any(me.endswith("." + d) for d in domains):
        domains.add(me)
    return tuple(sorted(domains))


def mta_sts_policy(site: MailSite) -> str:
    """The policy file served at C{https://mta-sts.DOMAIN/.well-known/mta-sts.txt} (RFC 8461 §3.2)."""
    return (
        "version: STSv1\n"
        f"mode: {site.mta_sts_mode}\n"
        f"mx: {site.mx_host}\n"
        f"max_age: {MTA_STS_MAX_AGE[site.mta_sts_mode]}\n"
    )


def _mta_sts_id(site: MailSite) -> str:
    return hashlib.sha256(mta_sts_policy(site).encode()).hexdigest()[:20]


def host_records(site: MailSite) -> list[Record]:
    """The MX host's A/AAAA and HELO SPF records (and the HELO name's, when it differs)."""
    records: list[Record] = []
    helo_names = [site.mx_host] + ([site.helo_host] if site.helo_host != site.mx_host else [])
    for name in helo_names:
        for address in site.addresses:
            ip = ipaddress.ip_address(address)
            records.append(Record(name, "AAAA" if ip.version == 6 else "A", str(ip)))
        if name not in site.domains:
            records.append(Record(name, "TXT", "v=spf1 a -all"))
    return records


def reverse_records(site: MailSite) -> list[Record]:
    """The PTR of each address, naming the HELO name."""
    return [Record(ipaddress.ip_address(a).reverse_pointer, "PTR", site.helo_host + ".", asked_of_address_owner=True)
            for a in site.addresses]


def domain_records(site: MailSite, domain: str) -> list[Record]:
    """MX, SPF, DMARC, MTA-STS and TLS-RPT of one mail domain."""
    postmaster = f"mailto:postmaster@{domain}"
    return [
        Record(domain, "MX", f"{MX_PREFERENCE} {site.mx_host}."),
        Record(domain, "TXT", "v=spf1 mx -all"),
        Record(f"_dmarc.{domain}", "TXT", f"v=DMARC1; p={site.dmarc_policy}; rua={postmaster}"),
        Record(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={_mta_sts_id(site)}"),
        Record(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua={postmaster}"),
    ]


def records_for(site: MailSite) -> list[Record]:
    """Every record, in the order C{pymta dns records} prints them: the host's, the PTRs, each domain's."""
    records = host_records(site) + reverse_records(site)
    for domain in site.domains:
        records.extend(domain_records(site, domain))
    return records


def zone_text(site: MailSite) -> str:
    """The output of C{pymta dns records}: zone-file lines, with comments for what is not a zone line."""
    out = [
        f"; DNS records for the mail of {', '.join(site.domains) or '(no mail domain)'}",
        f"; MX host {site.mx_host}, HELO name {site.helo_host}",
        "; DKIM: pymta dkim keygen DOMAIN SELECTOR makes a key and prints its record; pymta dkim records prints those of control/dkimkeys",
    ]
    if not site.addresses:
        out.append(f"; no address of {site.mx_host} known: give --ipv4 / --ipv6 for its A/AAAA and PTR records")
    out.append("")
    out.append(f"; the host {site.mx_host}")
    out.extend(r.zone_line() for r in host_records(site))
    ptrs = reverse_records(site)
    if ptrs:
        out.append("")
        out.append("; reverse DNS: not in your zone; ask the owner of each address (your provider) for:")
        out.extend("; " + r.zone_line() for r in ptrs)
    for domain in site.domains:
        out.append("")
        out.append(f"; the mail domain {domain}")
        out.extend(r.zone_line() for r in domain_records(site, domain))
        out.append(f"; and serve this MTA-STS policy at https://mta-sts.{domain}/.well-known/mta-sts.txt")
        out.append("; (a name with an address record and a trusted certificate; `pymta dns mta-sts` prints it):")
        out.extend("; " + line for line in mta_sts_policy(site).splitlines())
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Verdict:
    """How one expected record compares with what DNS answered."""

    record: Record
    status: str  # "ok", "missing", "different"
    found: tuple[str, ...] = field(default=())

    def line(self) -> str:
        text = f"{self.status:<9} {self.record.describe()}"
        if self.status == "different":
            text += " (found: " + ", ".join(self.found) + ")"
        return text


def _txt_kind(value: str) -> str:
    """C{v=spf1}, C{v=dmarc1}...: what a TXT record is, by its version tag."""
    first = value.replace(";", " ").split()
    return first[0].lower() if first else ""


def _tags(value: str) -> dict[str, str]:
    tags = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            tags[key.strip().lower()] = val.strip().lower()
    return tags


def _same_txt(expected: str, found: str) -> bool:
    if _txt_kind(expected) == "v=spf1":
        return expected.lower().split() == found.lower().split()
    wanted, have = _tags(expected), _tags(found)
    return all(have.get(k) == v for k, v in wanted.items())


def _same_name(a: str, b: str) -> bool:
    return _name(a) == _name(b)


def compare(record: Record, found: Sequence[str]) -> Verdict:
    """
    Compare one expected record with the values DNS has for its owner and
    type (zone-file form, TXT strings joined and unquoted).  An MX, A,
    AAAA or PTR is ok when it is among them; a TXT record is compared with
    the one of the same kind (C{v=spf1}, C{v=DMARC1}...): SPF term by
    term, the others tag by tag (tags beyond ours are allowed).
    """
    found = tuple(found)
    if record.rtype == "TXT":
        kind = _txt_kind(record.value)
        same_kind = tuple(f for f in found if _txt_kind(f) == kind)
        if not same_kind:
            return Verdict(record, "missing")
        if len(same_kind) == 1 and _same_txt(record.value, same_kind[0]):
            return Verdict(record, "ok", same_kind)
        return Verdict(record, "different", tuple(f'"{f}"' for f in same_kind))
    if not found:
        return Verdict(record, "missing")
    if record.rtype == "MX":
        target = record.value.split()[-1]
        ok = any(_same_name(f.split()[-1], target) for f in found)
    elif record.rtype in ("A", "AAAA"):
        ok = any(ipaddress.ip_address(f) == ipaddress.ip_address(record.value) for f in found)
    else:
        ok = any(_same_name(f, record.value) for f in found)
    return Verdict(record, "ok" if ok else "different", found)
