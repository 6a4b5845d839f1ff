# -*- test-case-name: tests.remote.test_smtproutes -*-
"""
The syntax of C{control/smtproutes}: pure, so that L{pymta.control} checks
every line when it reads the file (a daemon does not start on a bad line)
and L{pymta.remote.routes} applies the same parser at delivery time.

A line is C{key:value}, the key ending at the first colon (qmail's rule).
Keys: a domain, a C{.suffix} (any domain ending so), an address literal
(C{[192.0.2.1]}, the domain of C{user@[192.0.2.1]}), or nothing (the
default route).  Values (qmail's C{relay[:port]}; docs/remote.md):

  - C{} (nothing): no relay, MX as usual
  - C{relay.example} / C{relay.example:26}: that host, port 25 / 26
  - C{192.0.2.1} / C{[192.0.2.1]} / C{[192.0.2.1]:2525}: an IPv4 relay
  - C{[2001:db8::1]} / C{[2001:db8::1]:587}: an IPv6 relay (pymta's;
    brackets required, qmail has no IPv6)
  - C{:2525} (pymta's): MX as usual, connecting to port 2525

A relay may be followed by options (pymta's), each after one blank, in any
order, each at most once (docs/remote.md, 'Relaying through a smarthost'):

  - C{smtps}: TLS from the first byte (implicit TLS), no STARTTLS; the
    port defaults to 465
  - C{auth=LOGIN}: log in (AUTH PLAIN or LOGIN, inside TLS only) as LOGIN,
    with the password C{control/smarthostauth} gives for this relay and
    LOGIN (L{pymta.remote.smarthostauth})
  - C{ca=/path/ca.pem}: verify the relay's certificate against this file
    (a route with C{auth=} is verified against the system's CAs without it)

qmail has no blank in a value, so every qmail line keeps its meaning.

Anything else is refused with the reason: a port that is not 1-65535, an
address literal that is not an address (C{[256.1.1.1]},
C{[127.0.0.1:25]}), a relay that is not a host name, a further field, an
option that is unknown, repeated, or given without a relay.  An option's
text is never repeated in the reason: the qmail AUTH patches put a
password there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pymta.hostnames import domain_problem, host_name_problem, literal_address

__all__ = ["SMTP_PORT", "SMTPS_PORT", "Route", "RouteError", "lookup_suffixes", "parse_route", "key_problem"]

SMTP_PORT = 25
SMTPS_PORT = 465


class RouteError(ValueError):
    """An smtproutes value that cannot be used; the message says why."""


@dataclass(frozen=True)
class Route:
    """
    An smtproutes entry: C{relay} None means "look up MX", with C{port};
    C{smtps} (implicit TLS), C{login} (AUTH as this name) and C{ca_file}
    (trust anchors) come from the options.
    """

    relay: str | None
    port: int = SMTP_PORT
    smtps: bool = False
    login: str | None = None
    ca_file: str | None = None

    @property
    def verified(self) -> bool:
        """The relay's certificate must be verified: the route carries credentials or names a CA file."""
        return self.login is not None or self.ca_file is not None


def lookup_suffixes(domain: str) -> list[str]:
    """Keys qmail tries for C{domain}: itself, each C{.suffix} longest first, then C{""}."""
    domain = domain.lower()
    keys = [domain]
    i = domain.find(".")
    while i != -1:
        keys.append(domain[i:])
        i = domain.find(".", i + 1)
    keys.append("")
    return keys


#: the text does not repeat the line: qmail's AUTH patches put a user and password there
_EXTRA_FIELD = ("extra field after the port (expected relay[:port]; a login and password belong in "
                "control/smarthostauth)")


def _port(text: str, value: str) -> int:
    if not text:
        raise RouteError(f"empty port after the relay in {value!r}")
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise RouteError(f"bad port {text!r} (expected 1 to 65535)")
    return int(text)


@functools.lru_cache(maxsize=1024)  # pure, and asked again for every message to a routed domain
def parse_route(value: str) -> Route:
    """The route of the part of an smtproutes line after the key's colon; L{RouteError} says what is wrong."""
    if value != value.strip():
        raise RouteError(f"blank around the relay {value.split(' ')[0].strip()!r}")
    relay, *options = value.split(" ")
    route = _relay_and_port(relay)
    if not options:
        return route
    if route.relay is None:
        raise RouteError("options need a relay: MX routes take none")
    return _with_options(route, options, relay)


_OPTIONS = "smtps, auth=LOGIN or ca=/path/to/ca.pem"


def _with_options(route: Route, options: list[str], relay: str) -> Route:
    seen: set[str] = set()
    smtps, login, ca_file = False, None, None
    for position, option in enumerate(options, 2):
        name = option.split("=", 1)[0] if "=" in option else option
        if name not in ("smtps", "auth", "ca") or (name == "smtps") == ("=" in option):
            hint = " (a password belongs in control/smarthostauth)" if name and "=" not in option else ""
            raise RouteError(f"field {position} after the relay is no option: expected {_OPTIONS}{hint}")
        if name in seen:
            raise RouteError(f"option {name} given twice")
        seen.add(name)
        argument = option.partition("=")[2]
        if name == "smtps":
            smtps = True
        elif name == "auth":
            if not argument or not argument.isprintable():
                raise RouteError("auth= needs a login name (printable, no blank)")
            login = argument
        else:
            if not argument.startswith("/"):
                raise RouteError("ca= needs the absolute path of a PEM file of trusted certificates")
            ca_file = argument
    port = route.port if ":" in relay.rpartition("]")[2] or not smtps else SMTPS_PORT
    return Route(route.relay, port, smtps, login, ca_file)


def _relay_and_port(value: str) -> Route:
    if not value:
        return Route(None, SMTP_PORT)
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise RouteError(f"unterminated [ in relay {value!r}")
        relay, rest = value[: end + 1], value[end + 1 :]
        if literal_address(relay) is None:
            raise RouteError(f"not an IP address: {relay!r}")
        if not rest:
            return Route(relay, SMTP_PORT)
        if not rest.startswith(":"):
            raise RouteError(f"unexpected text after {relay!r}: {rest!r}")
        if ":" in rest[1:]:
            raise RouteError(_EXTRA_FIELD)
        return Route(relay, _port(rest[1:], value))
    fields = value.split(":")
    if len(fields) > 2:
        if literal_address(f"[{value}]") is not None:
            raise RouteError(f"IPv6 relays need brackets: {value!r}")
        raise RouteError(_EXTRA_FIELD)
    relay = fields[0]
    if relay:
        problem = host_name_problem(relay, final_dot=True)
        if problem is not None:
            raise RouteError(f"bad relay: {problem}")
    port = _port(fields[1], value) if len(fields) == 2 else SMTP_PORT
    return Route(relay or None, port)


def key_problem(key: str) -> str | None:
    """Why C{key} (before the first colon) can never match a recipient domain, or None."""
    if key == "":
        return None
    problem = domain_problem(key)
    return None if problem is None else f"bad domain key: {problem}"
