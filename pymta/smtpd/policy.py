# -*- test-case-name: tests.smtpd.test_policy -*-
"""
qmail-smtpd's envelope policy: address parsing, badmailfrom, rcpthosts,
RELAYCLIENT, authenticated relay, the relay tricks an open-relay test tries,
and C{[ip]} literals of this host (localiphost).

Everything here is pure: it takes a L{Controls} snapshot and the facts of a
session and returns a decision with qmail's reply line; the protocol only
sends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from pymta.address import split_address
from pymta.control import Controls

__all__ = [
    "MAX_ADDRESS_BYTES",
    "MailArgument",
    "parse_path",
    "parse_mail_parameters",
    "has_control_character",
    "is_bad_mailfrom",
    "rcpt_decision",
    "replace_local_ip",
    "is_relay_trick",
    "REPLY_BADMAILFROM",
    "REPLY_RCPTHOSTS",
    "REPLY_SYNTAX",
    "REPLY_DATABYTES",
]

#: qmail-smtpd refuses addresses longer than this many bytes
MAX_ADDRESS_BYTES = 900

REPLY_SYNTAX = "555 syntax error (#5.5.4)"
REPLY_BADMAILFROM = "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"
REPLY_RCPTHOSTS = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
REPLY_DATABYTES = "552 sorry, that message size exceeds my databytes limit (#5.3.4)"

#: the ASCII control characters: C0 and DEL
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MailArgument:
    """The address of a MAIL/RCPT argument and the ESMTP parameters after it."""

    address: str
    parameters: tuple[str, ...]


def parse_path(argument: str) -> MailArgument:
    """
    qmail-smtpd's address parsing of C{FROM:<addr> params} / C{TO:<addr>}.

    The address is the text after the first C{<} up to the closing C{>}
    (quotes removed, backslash escapes taken literally); without C{<} it is
    the text after the first C{:} up to the next space.  A leading source
    route (C{@a,@b:}) is dropped.  Whatever follows the address is split into
    ESMTP parameters (qmail ignores them; pymta reads SIZE).
    """
    if "<" in argument:
        rest = argument[argument.index("<") + 1 :]
        terminator = ">"
    else:
        colon = argument.find(":")
        rest = argument[colon + 1 :] if colon != -1 else argument
        rest = rest.lstrip(" ")
        terminator = " "
    if rest.startswith("@"):
        colon = rest.find(":")
        rest = rest[colon + 1 :] if colon != -1 else ""
    if "\\" not in rest and '"' not in rest:
        # nothing escaped or quoted (nearly every address): the address ends at the first terminator
        stop = rest.find(terminator)
        address, end = (rest, len(rest)) if stop == -1 else (rest[:stop], stop + 1)
        return MailArgument(address, _parameters(rest, end))
    out: list[str] = []
    escaped = quoted = False
    end = len(rest)
    for i, ch in enumerate(rest):
        if escaped:
            out.append(ch)
            escaped = False
            continue
        if not quoted and ch == terminator:
            end = i + 1
            break
        if ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        else:
            out.append(ch)
    return MailArgument("".join(out), _parameters(rest, end))


def _parameters(rest: str, end: int) -> tuple[str, ...]:
    """The ESMTP parameters after the address, which ends before C{rest[end]}."""
    return tuple(p for p in rest[end:].split(" ") if p) if end <= len(rest) else ()


def has_control_character(address: str) -> bool:
    """
    Whether C{address} holds a control character (a CR can sit inside a
    command line, which only LF ends): it would reach the Return-Path and
    Delivered-To lines of delivered mail, so such addresses are refused.
    """
    return _CONTROL_CHARACTER.search(address) is not None


def parse_mail_parameters(parameters: Iterable[str]) -> dict[str, str]:
    """ESMTP parameters C{KEY=value} (or C{KEY}) with upper-cased keys."""
    result: dict[str, str] = {}
    for p in parameters:
        key, _, value = p.partition("=")
        result[key.upper()] = value
    return result


def is_bad_mailfrom(controls: Controls, sender: str) -> bool:
    """qmail's badmailfrom test: the whole address or its C{@domain} is listed (case-insensitive)."""
    if not controls.badmailfrom:
        return False
    sender = sender.lower()
    if sender in controls.badmailfrom:
        return True
    at = sender.rfind("@")
    return at != -1 and sender[at:] in controls.badmailfrom


def replace_local_ip(controls: Controls, address: str, local_ips: Iterable[str]) -> str:
    """C{box@[1.2.3.4]} for one of this host's addresses (or 0.0.0.0) becomes C{box@<localiphost>}."""
    local, domain = split_address(address)
    if not (domain.startswith("[") and domain.endswith("]")):
        return address
    literal = domain[1:-1]
    if literal.lower().startswith("ipv6:"):
        literal = literal[5:]
    if literal == "0.0.0.0" or literal in set(local_ips):
        return local + "@" + controls.localiphost
    return address


def is_relay_trick(address: str) -> bool:
    """
    Local parts an open-relay probe uses to route through a local domain:
    C{a%b}, C{a!b}, or an C{@} inside a quoted local part (C{"a@b"@us}).
    """
    local, domain = split_address(address)
    if not domain:
        return False
    return any(c in local for c in "%!@")


@dataclass(frozen=True)
class RcptDecision:
    """The recipient to record (None when refused) and the reply line."""

    recipient: str | None
    reply: str


def rcpt_decision(
    controls: Controls,
    recipient: str,
    *,
    relayclient: str | None,
    authenticated: bool,
) -> RcptDecision:
    """
    Whether a recipient is accepted, after badmailfrom has been checked.

    RELAYCLIENT set (even empty) skips rcpthosts and is appended to the
    recipient; an authenticated client may relay; otherwise the domain must
    be in rcpthosts/morercpthosts (no rcpthosts file: everything is accepted,
    as in qmail) and the local part must not carry a relay trick (also when
    the address has no domain).
    """
    if relayclient is not None:
        return RcptDecision(recipient + relayclient, "250 ok")
    if authenticated:
        return RcptDecision(recipient, "250 ok")
    if controls.rcpthosts is None:
        return RcptDecision(recipient, "250 ok")
    if "@" not in recipient:
        # the queue appends envnoathost, one of our own names (qmail's rcpthosts() does the same);
        # C{u%elsewhere} would then be C{u%elsewhere@envnoathost}: the same relay tricks are refused
        if any(c in recipient for c in "%!"):
            return RcptDecision(None, REPLY_RCPTHOSTS)
        return RcptDecision(recipient, "250 ok")
    local, domain = split_address(recipient)
    if is_relay_trick(recipient) or not controls.accepts_rcpthost(domain):
        return RcptDecision(None, REPLY_RCPTHOSTS)
    return RcptDecision(recipient, "250 ok")
