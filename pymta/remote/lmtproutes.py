# -*- test-case-name: tests.remote.test_lmtproutes -*-
"""
C{control/lmtproutes}: the domains whose mail goes to an LMTP server
(RFC 2033; e.g. Dovecot's C{lmtp} service) for final delivery.

A line is C{key:server[ OPTION...]}; the key ends at the first colon
and is looked up as in smtproutes (the exact domain, then each
C{.suffix} longest first: L{pymta.remote.smtproutes.lookup_suffixes}),
but the empty key (every domain) is refused: mailbox domains are named.
The server is

  - C{unix:/run/dovecot/lmtp}: a unix socket (an absolute path);
  - C{host}, C{host:port}, C{192.0.2.1:24}, C{[2001:db8::1]:24}: TCP,
    in smtproutes' relay syntax (L{pymta.remote.smtproutes.parse_route}),
    port 24 by default.

Options, each at most once: C{concurrency=N} (1 to 1000, default
L{DEFAULT_CONCURRENCY}) bounds the connections pymta-send holds to that
server at once (connections are kept between messages:
L{pymta.remote.lmtpdelivery}); C{recipients=N} (1 to 100, default 1) is
the most recipients one transaction carries (Dovecot writes
C{Delivered-To:} only when there is one).

The recipients of these domains are remote ones: a domain listed here
must not also be in control/locals or control/virtualdomains (local
delivery would take its mail first; C{pymta check} says so).

The file is checked when read (L{lmtp_routes}, a parser of
L{pymta.extracontrols}): a bad line names the file and line, and the
daemon does not start (a reload keeps the old table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pymta.control import Controls, entry_error
from pymta.remote.smtproutes import RouteError, key_problem, lookup_suffixes, parse_route

__all__ = ["LMTP_PORT", "DEFAULT_CONCURRENCY", "NAME", "LMTPRoute", "LMTPRoutes", "parse_lmtproute", "lmtp_routes"]

LMTP_PORT = 24
DEFAULT_CONCURRENCY = 10
MAX_CONCURRENCY = 1000
MAX_RECIPIENTS = 100
_LIMITS = {"concurrency": MAX_CONCURRENCY, "recipients": MAX_RECIPIENTS}
NAME = "lmtproutes"


@dataclass(frozen=True)
class LMTPRoute:
    """
    One LMTP server: a unix socket C{path}, or a TCP C{host} (a name or a
    bracketed address literal) and C{port}; C{concurrency} connections at most.
    """

    path: str | None = None
    host: str | None = None
    port: int = LMTP_PORT
    concurrency: int = DEFAULT_CONCURRENCY
    recipients: int = 1

    @property
    def server(self) -> str:
        """How report texts and log lines name the server: the socket's path, or C{host:port}."""
        return self.path if self.path is not None else f"{self.host}:{self.port}"


def _options(options: list[str]) -> tuple[int, int]:
    found: dict[str, int] = {}
    for option in options:
        name, equals, value = option.partition("=")
        if name not in _LIMITS or not equals:
            raise RouteError(f"unknown option {option!r} (expected concurrency=N or recipients=N)")
        if name in found:
            raise RouteError(f"option {name} given twice")
        if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= _LIMITS[name]:
            raise RouteError(f"bad {name} {value!r} (expected 1 to {_LIMITS[name]})")
        found[name] = int(value)
    return found.get("concurrency", DEFAULT_CONCURRENCY), found.get("recipients", 1)


def parse_lmtproute(value: str) -> LMTPRoute:
    """The route of the part of an lmtproutes line after the key's colon; L{RouteError} says what is wrong."""
    if value != value.strip() or "  " in value:
        raise RouteError("blank around the server or between options")
    server, *options = value.split(" ")
    settings = _options(options)
    if server.startswith("unix:"):
        path = server[len("unix:"):]
        if not path.startswith("/") or not path.isprintable():
            raise RouteError(f"unix: needs the absolute path of the LMTP socket, not {path!r}")
        return LMTPRoute(path, None, LMTP_PORT, *settings)
    if not server:
        raise RouteError("no server (expected unix:/path or host[:port]): LMTP has no MX lookup")
    route = parse_route(server)
    if route.relay is None:
        raise RouteError("no server (expected unix:/path or host[:port]): LMTP has no MX lookup")
    port = route.port if ":" in server.rpartition("]")[2] else LMTP_PORT
    return LMTPRoute(None, route.relay, port, *settings)


class LMTPRoutes:
    """The parsed table: L{route_for} a domain."""

    def __init__(self, lines: Sequence[str] | None) -> None:
        self.routes: dict[str, LMTPRoute] = {}
        for index, line in enumerate(lines or ()):
            key, colon, value = line.partition(":")
            if not colon:
                raise entry_error(lines or (), index, f"no colon (expected domain:unix:/path or domain:host[:port]): "
                                  f"{line!r}", NAME)
            key = key.lower()
            problem = key_problem(key) if key else "no domain before the colon (every domain to LMTP is refused)"
            try:
                if problem is not None:
                    raise RouteError(problem)
                route = parse_lmtproute(value)
            except RouteError as e:
                raise entry_error(lines or (), index, str(e), NAME) from None
            self.routes.setdefault(key, route)

    def route_for(self, domain: str) -> LMTPRoute | None:
        """The LMTP route of C{domain}, or None: not an LMTP domain."""
        for key in lookup_suffixes(domain)[:-1]:
            route = self.routes.get(key)
            if route is not None:
                return route
        return None


def lmtp_routes(controls: Controls) -> LMTPRoutes:
    """The table of C{controls}' control/lmtproutes (empty when absent); L{ControlError} on a bad line."""
    return LMTPRoutes(controls.extra_lines(NAME))
