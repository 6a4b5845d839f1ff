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
daemon does not start (a reload keeps the old table).
"""

from __future__ import annotations

from typing import Sequence

from pymta.control import Controls, entry_error
from pymta.remote.smtproutes import Route, RouteError, key_problem, lookup_suffixes, parse_route

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
        self.routes: dict[str, Route] = {}
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

    def route_for(self, domain: str) -> Route | None:
        """The QMTP route of C{domain}, or None: not a QMTP domain."""
        for key in lookup_suffixes(domain):
            route = self.routes.get(key)
            if route is not None:
                return route
        return None


def qmtp_routes(controls: Controls) -> QMTPRoutes:
    """The table of C{controls}' control/qmtproutes (empty when absent); L{ControlError} on a bad line."""
    return QMTPRoutes(controls.extra_lines(NAME))

