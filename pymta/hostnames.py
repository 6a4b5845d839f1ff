# -*- test-case-name: tests.test_hostnames -*-
"""
The syntax of the host names, domains and addresses that control files hold.

Each function answers with the reason a text is unusable (a phrase for a
L{pymta.control.ControlError}), or None when it is fine.  They are checks,
not parsers: a text that passes is used exactly as written.

A host name is dot-separated labels of ASCII letters, digits, C{-} and
C{_} (or any printable non-ASCII character, for internationalised names),
each label 1 to 63 characters, at most 253 in all.  A name of digits and
dots only must be an IPv4 address.  An address literal is C{[192.0.2.1]},
C{[2001:db8::1]} or C{[IPv6:2001:db8::1]}.
"""

from __future__ import annotations

import ipaddress
import string

__all__ = [
    "blank_problem",
    "host_name_problem",
    "domain_problem",
    "literal_address",
    "ip_address_problem",
]

_LABEL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_")


def blank_problem(text: str) -> str | None:
    """Why C{text} is unusable because of white space in it, or None."""
    if text[:1].isspace():
        return f"blank at the start of {text!r}"
    if any(c.isspace() for c in text):
        return f"blank inside {text!r}"
    return None


def literal_address(text: str) -> str | None:
    """The address of an address literal (C{[192.0.2.1]}, C{[IPv6:...]}, C{[::1]}), else None."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


def ip_address_problem(text: str) -> str | None:
    """Why C{text} is not a plain IPv4 or IPv6 address, or None."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"not an IP address: {text!r}"
    return None


def host_name_problem(name: str, final_dot: bool = False) -> str | None:
    """
    Why C{name} is not a host name, or None.  C{final_dot} allows one dot
    at the end (a name given to DNS as it is).
    """
    if not name:
        return "empty host name"
    blank = blank_problem(name)
    if blank is not None:
        return blank
    bare = name[:-1] if final_dot and name.endswith(".") and len(name) > 1 else name
    labels = bare.split(".")
    if "" in labels:
        return f"empty label in host name {name!r} (a dot at an end, or two in a row)"
    for label in labels:
        if len(label.encode("utf-8")) > 63:
            return f"label longer than 63 characters in host name {name!r}"
        for c in label:
            if c not in _LABEL_CHARACTERS and (ord(c) < 128 or not c.isprintable()):
                return f"character {c!r} cannot be in host name {name!r}"
    if len(bare.encode("utf-8")) > 253:
        return f"host name longer than 253 characters: {name[:40]!r}..."
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(bare)
        except ValueError:
            return f"not an IPv4 address: {name!r}"
    return None


def domain_problem(entry: str, suffix: bool = True, literal: bool = True) -> str | None:
    """
    Why C{entry} cannot stand for a domain in a list or table, or None:
    a host name, C{.suffix} (when C{suffix}: any name ending so) or an
    address literal (when C{literal}).
    """
    if literal and entry.startswith("["):
        if literal_address(entry) is None:
            return f"not an address literal: {entry!r}"
        return None
    if entry.startswith("."):
        if not suffix:
            return f"{entry!r}: a .suffix entry never matches here (whole domains only)"
        problem = host_name_problem(entry[1:])
        return None if problem is None else f"{problem} (in the suffix {entry!r})"
    return host_name_problem(entry)
