# -*- test-case-name: tests.senderauth.test_spfcheck -*-
"""
SPF (RFC 7208) of the HELO and MAIL FROM identities, with pyspf.

pyspf evaluates the record (mechanisms, macros, the limits of section
4.6.4: at most 10 DNS-querying terms, at most 2 void lookups); its DNS
questions go through our L{DNSLookups} (the check's resolver and
deadline) instead of pyspf's own resolver: L{_Query} replaces only its
C{dns} method.  A question that times out makes the result
C{temperror}.

The MAIL FROM identity of a null sender (bounces) is the HELO name
(section 2.4): then only the HELO result is reported, and it is the one
DMARC uses.

Only a HELO that is a domain name is reported (C{smtp.helo}); the text of
a C{fail}'s explanation (C{exp=}, the sender's own DNS data) is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import spf

from pymta.dns import ip_literal
from pymta.hostnames import host_name_problem
from pymta.senderauth.lookups import DNSLookups, LookupTemporary
from pymta.senderauth.verdict import NONE, Verdict

__all__ = ["SPFVerdicts", "check_spf", "SPF_RESULTS"]

SPF_RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"})
#: the reason given for C{fail} (the domain's C{exp=} explanation is never copied)
FAIL_REASON = "SPF fail - not authorized"  # pyspf's own text when there is no exp=


@dataclass(frozen=True)
class SPFVerdicts:
    """
    The HELO and MAIL FROM verdicts (C{mailfrom} None for a null sender)
    and C{domain}, the domain whose SPF result DMARC aligns with.
    """

    helo: Verdict
    mailfrom: Verdict | None
    domain: str

    @property
    def for_dmarc(self) -> Verdict:
        return self.mailfrom if self.mailfrom is not None else self.helo

    def all(self) -> tuple[Verdict, ...]:
        return (self.helo,) if self.mailfrom is None else (self.helo, self.mailfrom)


class _Query(spf.query):  # pyspf has no type hints: a subclass of Any
    """pyspf's evaluation, its DNS questions asked through L{DNSLookups}."""

    def __init__(self, lookups: DNSLookups, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lookups = lookups

    def dns(self, name: Any, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not name or not all(0 < len(label) < 64 for label in name.split(".")):
            return []  # as pyspf: no such name can exist
        try:
            records = self._lookups.records(name, qtype)
        except LookupTemporary as e:
            raise spf.TempError(f"DNS {e}") from None
        result = [_value(qtype, r) for r in records]
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def _value(qtype: str, record: Any) -> Any:
    """A record in the form pyspf's dnspython driver gives it."""
    if qtype in ("A", "AAAA"):
        return record.address
    if qtype == "MX":
        return (record.preference, record.exchange)
    if qtype == "PTR":
        return record.target.to_text(True)
    return record.strings  # TXT, SPF


def _evaluate(lookups: DNSLookups, ip: str, sender: str, helo: str, receiver: str) -> tuple[str, str]:
    try:
        result, _code, explanation = _Query(lookups, i=ip, s=sender, h=helo, receiver=receiver, querytime=0).check()
    except LookupTemporary as e:  # pragma: no cover - dns() turns these into TempError
        return "temperror", str(e)
    if result not in SPF_RESULTS:
        return "permerror", f"unexpected SPF result {result!r}"
    if result == "fail":
        return result, FAIL_REASON  # not the record's exp= text: that is the sender's DNS talking
    return result, explanation or ""


def _helo_domain(helo: str | None) -> str | None:
    if not helo or ip_literal(helo) is not None or host_name_problem(helo.rstrip(".")) is not None:
        return None
    return helo.rstrip(".").lower()


def check_spf(lookups: DNSLookups, ip: str, sender: str, helo: str | None, receiver: str) -> SPFVerdicts:
    """
    SPF for a client at C{ip} that said C{helo} and gave MAIL FROM
    C{sender} (C{""} for a null sender).  Blocking: runs on a worker thread.
    """
    helo_domain = _helo_domain(helo)
    if helo_domain is None:
        helo_verdict = Verdict("spf", NONE, "HELO is not a domain name")  # and is not copied
    else:
        result, why = _evaluate(lookups, ip, f"postmaster@{helo_domain}", helo_domain, receiver)
        helo_verdict = Verdict("spf", result, why, (("smtp.helo", helo_domain),))
    if not sender:
        return SPFVerdicts(helo_verdict, None, helo_domain or "")
    domain = sender.rpartition("@")[2].rstrip(".").lower()
    result, why = _evaluate(lookups, ip, sender, helo_domain or helo or "", receiver)
    return SPFVerdicts(helo_verdict, Verdict("spf", result, why, (("smtp.mailfrom", domain),)), domain)
