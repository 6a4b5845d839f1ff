# -*- test-case-name: tests.remote.test_tlsprecedence -*-
"""
DANE and MTA-STS together for one domain's MX delivery, pure: DANE applies
per MX host, MTA-STS to the other hosts (RFC 8461 section 2).
L{combine} turns the planned targets, DANE's L{HostDecisions} and the
domain's L{STSDecision} into a L{TLSPlan}; the channel then tries, per host:

  - a host with authenticated TLSA records (a L{DaneTLS}): as DANE demands,
    whether or not the domain's MTA-STS policy lists it;
  - a host whose TLSA lookup failed (a deferral text): not tried, the text
    is its deferral;
  - any other host: as the MTA-STS decision says; under C{enforce} only a
    host the policy lists is tried, with verified TLS (L{TLSPlan.policy}).

A domain whose enforced MTA-STS policy lists none of its MX hosts is
deferred (L{TLSPlan.refusal}) only when no host has DANE either.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.interfaces import DeliveryResult
from pymta.remote.dane import HostDecisions
from pymta.remote.danetls import DaneTLS
from pymta.remote.mtastsapply import STSDecision
from pymta.remote.routes import Target
from pymta.remote.tlspolicy import TLSPolicy

__all__ = ["TLSPlan", "combine"]


@dataclass(frozen=True)
class TLSPlan:
    """
    The C{targets} to try in order, the TLS C{policy} of the hosts DANE
    says nothing about, DANE's decisions (C{dane}) for the others; a
    C{refusal} (a deferral's text) when nothing may be tried.
    """

    targets: list[Target]
    policy: TLSPolicy
    dane: HostDecisions
    sts: STSDecision
    refusal: str | None = None

    def explain(self, results: list[DeliveryResult], hosts: list[str | None]) -> list[DeliveryResult]:
        """
        C{results}, each got from the MX host at its place in C{hosts} (None:
        not known), with the MTA-STS policy named in the texts of the TLS
        deferrals it caused; a DANE host's texts are left as they are.
        """
        explained = self.sts.explain(results)
        return [result if host is not None and host in self.dane else text
                for result, text, host in zip(results, explained, hosts)]


def combine(targets: list[Target], dane: HostDecisions, sts: STSDecision) -> TLSPlan:
    """The L{TLSPlan} for C{targets} (in MX order) under DANE's decisions and MTA-STS's (see the module docstring)."""
    kept = [t for t in targets if isinstance(dane.get(t.host), DaneTLS) or t in sts.targets]
    refusal = sts.refusal if not kept else None
    return TLSPlan(kept, sts.policy, dane, sts, refusal)
