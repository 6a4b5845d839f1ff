# -*- test-case-name: tests.remote.test_qmtproutes -*-
"""
C{control/qmtproutes}: the domains whose mail goes out over QMTP (qmail's
QMTP patch for qmail-remote), in smtproutes' format.

A line is C{key:relay[:port]}; keys are looked up as in smtproutes (the
exact domain, each C{.suffix} longest first, the empty key for every
domain: L{pymta.remote.smtproutes.lookup_suffixes}).  The value is
parsed by smtproutes' parser (L{pymta.remote.smtproutes.parse_route}) but
the port defaults to QMTP's, 209, and the relay takes no options.  An
empty value means the domain's MX hosts, on port 209.  A domain that
qmtproutes names goes over QMTP whatever smtproutes says for it.

The file is checked when read (L{qmtp_routes}, a parser of
L{pymta.extracontrols}): a bad line names the file and line, and the
daemon does not start (a reload keeps the old table).  QMTP has no TLS,
so a line is also refused when it sends over QMTP a domain that
control/tlsdestinations requires TLS for (L{QMTPRoutes.tls_conflict}).
"""

from __future__ import annotations

from typing import Sequence

from pymta.control import ControlError, Controls, entry_error
from pymta.remote.smtproutes import Route, RouteError, key_problem, lookup_suffixes, parse_route
from pymta.remote.tlspolicy import TLSPolicyTable, tls_destinations

__all__ = ["QMTP_PORT", "NAME", "QMTPRoutes", "parse_qmtproute", "qmtp_routes"]

QMTP_PORT = 209
NAME = "qmtproutes"


def parse_qmtproute(value: str) -> Route:
    """The route of the part of a qmtproutes line after the key's colon; L{RouteError} says what is wrong."""
    if " " in value.strip():
        raise RouteError("qmtproutes takes no options (expected relay[:port])")
    route = parse_route(value)
    if ":" in value.rpartition("]")[2]:
        return route
    return Route(route.relay, QMTP_PORT)


class QMTPRoutes:
    """The parsed table: L{route_for} a domain."""

    def __init__(self, lines: Sequence[str] | None) -> None:
        self.lines: Sequence[str] = lines or ()
        self.routes: dict[str, Route] = {}
        self._index: dict[str, int] = {}  # key -> its line's index
        for index, line in enumerate(lines or ()):
            key, colon, value = line.partition(":")
            if not colon:
                raise entry_error(lines or (), index, f"no colon (expected domain:relay[:port]): {line!r}", NAME)
            key = key.lower()
            problem = key_problem(key)
            try:
                if problem is not None:
                    raise RouteError(problem)
                route = parse_qmtproute(value)
            except RouteError as e:
                raise entry_error(lines or (), index, str(e), NAME) from None
            self.routes.setdefault(key, route)
            self._index.setdefault(key, index)

    def route_for(self, domain: str) -> Route | None:
        """The QMTP route of C{domain}, or None: not a QMTP domain."""
        key = self._key_for(domain)
        return None if key is None else self.routes[key]

    def _key_for(self, domain: str) -> str | None:
        for key in lookup_suffixes(domain):
            if key in self.routes:
                return key
        return None

    def tls_conflict(self, tls: TLSPolicyTable) -> tuple[int, str] | None:
        """
        The index of a line sending over QMTP some domain C{tls} requires
        TLS for, and that domain (C{*.suffix}: any other subdomain); or None.

        Each key of either table stands for the domains it covers that no
        longer key names: itself, or C{*.suffix} for a C{.suffix} key (no key
        can start with C{*}), or C{*} for the empty one.  Of the two keys a
        domain matches, the longer one's stand-in matches the same two keys,
        so trying the stand-ins finds every domain that is both.
        """
        for key in sorted(self.routes.keys() | tls.keys):
            domain = key if key and not key.startswith(".") else "*" + key
            found = self._key_for(domain)
            if found is not None and tls.policy_for(domain).required:
                return self._index[found], domain
        return None


def qmtp_routes(controls: Controls) -> QMTPRoutes:
    """
    The table of C{controls}' control/qmtproutes (empty when absent);
    L{ControlError} on a bad line, or a line for a domain that
    control/tlsdestinations requires TLS for.
    """
    routes = QMTPRoutes(controls.extra_lines(NAME))
    try:
        conflict = routes.tls_conflict(tls_destinations(controls)) if routes.routes else None
    except ControlError:
        return routes  # a bad tlsdestinations is its own parser's error
    if conflict is not None:
        index, domain = conflict
        raise entry_error(routes.lines, index, f"control/tlsdestinations requires TLS for {domain}, and QMTP has "
                          "no TLS: remove one of the two entries", NAME)
    return routes

