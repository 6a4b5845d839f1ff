# -*- test-case-name: tests.remote.test_mtastsapply -*-
"""
What an MTA-STS policy does to one domain's delivery, pure: L{apply_policy}
turns the planned targets, the TLS policy and the domain's MTA-STS policy
into an L{STSDecision}.

  - C{enforce}: only targets whose MX host name the policy lists are
    tried, with TLS required and the certificate verified for that name
    (against the system's CAs, or the C{ca} file of control/mtasts).  When
    no MX is listed the domain is deferred with C{4.7.5} and a text naming
    the hosts; a listed MX that fails TLS is a C{4.7.5} deferral too, and
    L{STSDecision.explain} says in its text that the policy asked for TLS.
  - C{testing}: the hosts that are not listed are logged (C{notes}) and
    delivery goes on as without a policy (RFC 8461 section 5).
  - C{none}, or no policy: nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pymta.interfaces import DEFERRAL, DeliveryResult
from pymta.remote.mtastspolicy import ENFORCE, TESTING, Policy
from pymta.remote.routes import Target
from pymta.remote.tlspolicy import VERIFY, TLSPolicy

__all__ = ["STSDecision", "apply_policy", "unchanged"]

_TLS_CODE = "(#4.7.5)"


@dataclass(frozen=True)
class STSDecision:
    """
    The targets and TLS policy to deliver with; C{refusal} (a deferral's
    text) when nothing may be tried; C{notes} to log; C{enforced} when the
    TLS policy comes from an enforced MTA-STS policy of C{domain}.
    """

    targets: list[Target]
    policy: TLSPolicy
    refusal: str | None = None
    notes: list[str] = field(default_factory=list)
    domain: str = ""
    enforced: bool = False

    def explain(self, results: list[DeliveryResult]) -> list[DeliveryResult]:
        """C{results} with the policy named in the texts of TLS deferrals it caused."""
        if not self.enforced:
            return results
        prefix = f"MTA-STS policy of {self.domain} requires TLS with a valid certificate: "
        return [replace(r, text=prefix + r.text) if r.status == DEFERRAL and _TLS_CODE in r.text
                and not r.text.startswith("MTA-STS") else r for r in results]


def unchanged(targets: list[Target], policy: TLSPolicy) -> STSDecision:
    """The decision without MTA-STS."""
    return STSDecision(targets, policy)


def _listing(hosts: list[str]) -> str:
    return ", ".join(hosts) + (" is" if len(hosts) == 1 else " are")


def apply_policy(domain: str, sts: Policy | None, targets: list[Target], policy: TLSPolicy,
                 ca_file: str | None) -> STSDecision:
    """The decision for C{domain}'s C{targets} under its MTA-STS policy C{sts} (see the module docstring)."""
    if sts is None or sts.mode not in (ENFORCE, TESTING):
        return unchanged(targets, policy)
    unlisted: list[str] = []
    for target in targets:
        if not sts.allows(target.host) and target.host not in unlisted:
            unlisted.append(target.host)
    if sts.mode == TESTING:
        notes = [f"MTA-STS policy of {domain} (testing): {_listing(unlisted)} not in the policy; delivering "
                 "anyway"] if unlisted else []
        return STSDecision(targets, policy, notes=notes, domain=domain)
    allowed = [t for t in targets if t.host not in unlisted]
    if not allowed:
        text = f"MTA-STS policy of {domain}: {_listing(unlisted)} not in the policy. (#4.7.5)\n"
        return STSDecision([], policy, refusal=text, notes=[text.rstrip("\n")], domain=domain)
    notes = [f"MTA-STS policy of {domain} (enforce): {_listing(unlisted)} not in the policy; not tried"] \
        if unlisted else []
    return STSDecision(allowed, TLSPolicy(VERIFY, ca_file), notes=notes, domain=domain, enforced=True)
