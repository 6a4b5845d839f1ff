# -*- test-case-name: tests.queue.test_routing -*-
"""
Recipient rewriting and channel choice, as qmail-send does it
(see docs/internals.md, 'Recipient rewriting').

For each envelope recipient, in order:

1. an address without C{@} gets C{@envnoathost};
2. percenthack: while the domain is listed in C{percenthack} and the local
   part holds a C{%}, the last C{%} becomes the C{@} and the old domain goes;
3. a domain listed in C{locals} is delivered locally, unchanged;
4. C{virtualdomains} is searched for the whole address, the domain, each
   C{.suffix} of the domain (longest first) and the empty key; the first key
   found wins.  An empty prepend means "remote after all"; otherwise the
   address becomes C{prepend-address} and is delivered locally;
5. everything else is remote.

Lookups are case-insensitive; the rewritten address keeps the original case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pymta.control import Controls

__all__ = ["Route", "LOCAL", "REMOTE", "route_recipient", "strip_virtual_prepend", "virtual_keys"]

LOCAL = "local"
REMOTE = "remote"


@dataclass(frozen=True)
class Route:
    """Where one recipient goes: C{channel} is C{local} or C{remote}; C{address} as written to the channel file."""

    channel: str
    address: str


def virtual_keys(address: str) -> list[str]:
    """
    The C{virtualdomains} keys tried for C{address}, in qmail's order: the
    whole address, the domain, each C{.suffix} longest first, the empty key.
    All lowercased.
    """
    at = address.rfind("@")
    lowered = address.lower()
    keys = [lowered]
    domain = lowered[at + 1 :]
    keys.append(domain)
    for i, ch in enumerate(domain):
        if ch == ".":
            keys.append(domain[i:])
    keys.append("")
    return keys


def _apply_percenthack(address: str, percenthack: frozenset[str]) -> str:
    at = address.rfind("@")
    while address[at + 1 :].lower() in percenthack:
        percent = address.rfind("%", 0, at)
        if percent == -1:
            break
        address = address[:percent] + "@" + address[percent + 1 : at]
        at = percent
    return address


def route_recipient(address: str, controls: Controls) -> Route:
    """Rewrite one envelope recipient and choose its channel."""
    if "@" not in address:
        address = address + "@" + controls.envnoathost
    address = _apply_percenthack(address, controls.percenthack)
    domain = address[address.rfind("@") + 1 :]
    if domain.lower() in controls.locals:
        return Route(LOCAL, address)
    virtual: Mapping[str, str] = controls.virtualdomains
    if virtual:
        for key in virtual_keys(address):
            prepend = virtual.get(key)
            if prepend is None:
                continue
            if prepend == "":
                break
            return Route(LOCAL, prepend + "-" + address)
    return Route(REMOTE, address)


def strip_virtual_prepend(recipient: str, controls: Controls) -> str:
    """
    The recipient as a bounce names it: the C{prepend-} added by a domain,
    wildcard or catch-all C{virtualdomains} entry removed again (a
    C{user@domain} entry's prepend stays, as in qmail).
    """
    at = recipient.rfind("@")
    if at == -1:
        return recipient
    virtual = controls.virtualdomains
    if not virtual:
        return recipient
    for key in virtual_keys(recipient)[1:]:
        prepend = virtual.get(key)
        if prepend is None:
            continue
        if prepend and recipient.startswith(prepend + "-"):
            return recipient[len(prepend) + 1 :]
        break
    return recipient
