# -*- test-case-name: tests.milter.test_settings -*-
"""
C{control/milters}: the content filters smtpd asks, in order (a pymta addition).

One filter a line (C{#} starts a comment)::

    NAME SOCKET [default=tempfail|accept|reject] [connect=S] [command=S] [content=S]
         [macros.STAGE=NAME,NAME...]

  - C{NAME}: how log lines name the filter (letters, digits, C{. _ -}), unique;
  - C{SOCKET}: C{unix:/path} (or Sendmail's C{local:/path}), C{inet:HOST:PORT}
    as Postfix writes it, C{inet:PORT@HOST} as Sendmail does, C{inet6:...}
    likewise (C{inet6:[::1]:PORT}, C{inet6:PORT@::1}).  HOST is an IP address
    (or C{localhost}, taken as C{127.0.0.1} or C{::1}): no DNS lookup stands
    between a client and its greeting;
  - C{default}: what a filter that is down, silent or broken counts as -
    C{tempfail} (the default, as Postfix's C{milter_default_action}), C{reject},
    or C{accept} (the filter is left out for the rest of the session);
  - C{connect}, C{command}, C{content}: timeouts in seconds (1 to 3600) to
    connect, for each command's answer, and for each answer of the message's
    content (header, body, end of message); 30, 30 and 300 by default, as
    Postfix's C{milter_*_timeout};
  - C{macros.STAGE}: the macros sent at STAGE (connect, helo, mail, rcpt, data,
    eoh, eom) when the filter does not ask for its own list, instead of
    L{DEFAULT_MACROS} (Postfix's C{milter_*_macros} lists).

An empty file is no filter.  A bad line is a L{pymta.control.ControlError}
naming the file and line (L{milter_specs}, a parser of L{pymta.extracontrols}).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Mapping

from pymta.control import Controls, entry_error
from pymta.milter.api import Action
from pymta.milter.negotiation import macro_name

__all__ = ["MilterSpec", "parse_milter_line", "milter_specs", "DEFAULT_MACROS", "NAME", "SettingError"]

NAME = "milters"
MAX_TIMEOUT = 3600
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the NUL
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_MACRO = re.compile(r"\A(?:[A-Za-z_]|\{?[A-Za-z_][A-Za-z0-9_]*\}?)\Z")
_DEFAULTS = {"tempfail": Action.TEMPFAIL, "accept": Action.ACCEPT, "reject": Action.REJECT}
_TIMEOUTS = {"connect": 30, "command": 30, "content": 300}

#: the macros sent at each stage when neither the filter nor the file names others (Postfix's
#: milter_*_macros, with the client's address, name and port at connect for filters that read them)
DEFAULT_MACROS: Mapping[str, tuple[str, ...]] = {
    "connect": ("j", "{daemon_name}", "{daemon_addr}", "v", "_", "{client_addr}", "{client_name}",
                "{client_port}", "{client_ptr}"),
    "helo": ("{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"),
    "mail": ("i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}",
             "{mail_mailer}"),
    "rcpt": ("i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"),
    "data": ("i",),
    "eoh": ("i",),
    "eom": ("i",),
}


class SettingError(ValueError):
    """A line of control/milters is wrong (the text says how)."""


@dataclass(frozen=True)
class MilterSpec:
    """One filter: where it listens and how it is treated."""

    name: str
    #: C{"unix"} (C{address} is the socket's path), C{"inet"} or C{"inet6"} (C{address}, C{port})
    family: str
    address: str
    port: int = 0
    default: Action = Action.TEMPFAIL
    connect_timeout: int = _TIMEOUTS["connect"]
    command_timeout: int = _TIMEOUTS["command"]
    content_timeout: int = _TIMEOUTS["content"]
    macros: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_MACROS))

    @property
    def socket(self) -> str:
        """The socket as log lines name it."""
        if self.family == "unix":
            return f"unix:{self.address}"
        return f"{self.family}:[{self.address}]:{self.port}" if ":" in self.address \
            else f"{self.family}:{self.address}:{self.port}"


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise SettingError(f"bad port {text!r}")
    return int(text)


def _host(text: str, family: str) -> str:
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if text.lower() == "localhost":
        return "::1" if family == "inet6" else "127.0.0.1"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise SettingError(f"bad host {text!r}: an IP address is needed (no DNS lookup for filters)") from None
    if family == "inet6" and address.version != 6:
        raise SettingError(f"inet6: needs an IPv6 address, not {text!r}")
    return str(address)


def parse_socket(text: str) -> tuple[str, str, int]:
    """C{(family, address, port)} of a socket field; L{SettingError} says what is wrong."""
    kind, colon, rest = text.partition(":")
    if not colon:
        raise SettingError(f"bad socket {text!r} (expected unix:/path, inet:HOST:PORT or inet:PORT@HOST)")
    if kind in ("unix", "local"):
        if not rest.startswith("/") or not rest.isprintable():
            raise SettingError(f"{kind}: needs the absolute path of the filter's socket, not {rest!r}")
        if len(rest.encode()) > MAX_SOCKET_PATH:
            raise SettingError(f"socket path longer than {MAX_SOCKET_PATH} bytes (the system's limit)")
        return "unix", rest, 0
    if kind not in ("inet", "inet6"):
        raise SettingError(f"unknown socket kind {kind!r} (expected unix, inet or inet6)")
    if "@" in rest:
        port, _, host = rest.partition("@")
    else:
        host, _, port = rest.rpartition(":")
        if not host:
            raise SettingError(f"no host in {text!r} (expected {kind}:HOST:PORT or {kind}:PORT@HOST)")
    address = _host(host, kind)
    family = "inet6" if ":" in address else "inet"
    return family, address, _port(port)


def _timeout(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_TIMEOUT:
        raise SettingError(f"bad {name} timeout {value!r} (expected 1 to {MAX_TIMEOUT} seconds)")
    return int(value)


def parse_milter_line(line: str) -> MilterSpec:
    """The filter of one line of control/milters; L{SettingError} says what is wrong."""
    words = line.split()
    if len(words) < 2:
        raise SettingError("expected a name and a socket (NAME unix:/path or NAME inet:HOST:PORT)")
    name, socket, *options = words
    if not _NAME.match(name):
        raise SettingError(f"bad filter name {name!r} (letters, digits, '.', '_', '-')")
    family, address, port = parse_socket(socket)
    default = Action.TEMPFAIL
    timeouts = dict(_TIMEOUTS)
    macros = dict(DEFAULT_MACROS)
    seen: set[str] = set()
    for option in options:
        key, equals, value = option.partition("=")
        if not equals:
            raise SettingError(f"bad option {option!r} (expected NAME=VALUE)")
        if key in seen:
            raise SettingError(f"option {key} given twice")
        seen.add(key)
        if key == "default":
            if value not in _DEFAULTS:
                raise SettingError(f"bad default action {value!r} (expected tempfail, accept or reject)")
            default = _DEFAULTS[value]
        elif key in timeouts:
            timeouts[key] = _timeout(key, value)
        elif key.startswith("macros.") and key[len("macros."):] in DEFAULT_MACROS:
            names = [n for n in value.split(",") if n]
            bad = [n for n in names if not _MACRO.match(n)]
            if bad:
                raise SettingError(f"bad macro name {bad[0]!r}")
            macros[key[len("macros."):]] = tuple(macro_name(n.strip("{}")) for n in names)
        else:
            raise SettingError(f"unknown option {key!r} (expected default, connect, command, content or "
                               f"macros.STAGE with STAGE one of {', '.join(DEFAULT_MACROS)})")
    return MilterSpec(name, family, address, port, default, timeouts["connect"], timeouts["command"],
                      timeouts["content"], macros)


def milter_specs(controls: Controls) -> tuple[MilterSpec, ...]:
    """The filters of control/milters in order (none when the file is absent or empty)."""
    lines = controls.extra_lines(NAME)
    specs: list[MilterSpec] = []
    names: set[str] = set()
    for index, line in enumerate(lines or ()):
        try:
            spec = parse_milter_line(line)
            if spec.name in names:
                raise SettingError(f"filter name {spec.name!r} used twice")
        except SettingError as e:
            raise entry_error(lines or (), index, str(e), NAME) from None
        names.add(spec.name)
        specs.append(spec)
    return tuple(specs)
