# -*- test-case-name: tests.smtpd.test_remotehost -*-
"""
The client's host name, as tcpserver -h -p finds it: the first name of
its address's PTR record, kept only when that name's addresses include the
client's (a PTR record alone is the client's own word).  smtpd uses it for
C{=host} rules in tcp.smtp, C{TCPREMOTEHOST} and the Received line.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from pymta.clientaddress import normalise_ip

__all__ = ["can_look_up", "remote_host_name"]


def can_look_up(resolver: Any) -> bool:
    """True when C{resolver} answers PTR queries."""
    return resolver is not None and hasattr(resolver, "ptr")


def remote_host_name(resolver: Any, ip: str, seconds: float, clock: Any) -> defer.Deferred:
    """
    A Deferred firing with the confirmed name of C{ip}, or None (no name,
    a name not mapping back, a DNS failure, or no answer within
    C{seconds} on C{clock}); it never fails.  Cancelling it stops the lookup.
    """
    d: defer.Deferred = resolver.ptr(ip)
    d.addCallback(_confirm, resolver, ip)
    d.addTimeout(seconds, clock)
    return d.addCallbacks(lambda name: name, lambda failure: None)


def _confirm(names: list[str], resolver: Any, ip: str) -> defer.Deferred | None:
    if not names or not hasattr(resolver, "addresses"):
        return None
    name = names[0].rstrip(".")
    d: defer.Deferred = resolver.addresses(name)
    return d.addCallback(lambda found: name if ip in {normalise_ip(a) for a in found} else None)
