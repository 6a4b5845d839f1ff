# -*- test-case-name: tests.forwarding.test_entries -*-
"""
One sendmail-style list of forwarding targets, as the right-hand side of
an C{/etc/aliases} line, a line of an C{:include:} file or of a
C{~/.forward} holds it.

L{split_items} cuts the text at the commas that are outside quotes,
comments, C{<...>} and C{[...]}; L{parse_item} reads one item:

- C{:include:/path} (spaces allowed inside C{:include:}, the path may be
  quoted): every target listed in that file;
- C{|command} or C{"|command"}: a program, when no C{@} stands outside
  quotes (C{|x@example.org} is an address);
- C{/path} or C{"/path"}: a file, under the same condition;
- anything else: RFC 822 addresses (C{bob}, C{bob (Bob) @example.org},
  C{Joe <joe@example.org>}, C{"spaced out"@example.org}); a leading
  backslash (sendmail's C{\\bob}) is dropped.  Groups are refused.

Addresses come back as written (comments and quotes removed), not yet
completed with a domain: L{qualify} does that with qmail-inject's rules.
Errors raise L{EntryError} with a text that says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.address import MAX_ADDRESS_BYTES
from pymta.inject.addrlist import AddressListError, GroupStart, mailboxes, parse_address_list
from pymta.inject.rewrite import Rewriter
from pymta.inject.tokens import QUOTE, TokenError, tokenize, unquote

__all__ = ["Entry", "EntryError", "ADDRESS", "PROGRAM", "FILE", "INCLUDE", "split_items", "parse_item",
           "parse_list", "qualify"]

ADDRESS = "address"
PROGRAM = "program"
FILE = "file"
INCLUDE = "include"

_INCLUDE = ":include:"


class EntryError(ValueError):
    """A forwarding target that cannot be read."""


@dataclass(frozen=True)
class Entry:
    """One target: C{kind} is L{ADDRESS}, L{PROGRAM} (the command), L{FILE} or L{INCLUDE} (the path)."""

    kind: str
    value: str


def split_items(text: str) -> list[str]:
    """The comma-separated items of C{text}, stripped, empty ones dropped."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    comment = angle = literal = 0
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comment or literal):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif literal:
            literal = 0 if ch == "]" else 1
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment = 1
        elif ch == "[":
            literal = 1
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(angle - 1, 0)
        elif ch == "," and not angle:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if quoted or comment or literal or angle:
        raise EntryError(f"unbalanced quote or bracket in {text.strip()!r}")
    items.append("".join(current).strip())
    return [item for item in items if item]


def _outside_quotes(text: str) -> str:
    """C{text} with quoted strings removed (to look for an unquoted C{@})."""
    out = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted:
            out.append(ch)
    return "".join(out)


def _include_path(item: str) -> str | None:
    """The path of an C{:include:} item (spaces allowed inside the keyword), or None."""
    i = 0
    for want in _INCLUDE:
        while i < len(item) and item[i] in " \t":
            i += 1
        if i >= len(item) or item[i].lower() != want:
            return None
        i += 1
    path = item[i:].strip()
    if len(path) >= 2 and path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if not path.startswith("/"):
        raise EntryError(f"{_INCLUDE} needs an absolute path: {item!r}")
    return path


def _check_address(address: str, item: str) -> str:
    if not address:
        raise EntryError(f"empty address in {item!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise EntryError(f"control character in {item!r}")
    if len(address.encode("utf-8", "surrogateescape")) > MAX_ADDRESS_BYTES:
        raise EntryError(f"address longer than {MAX_ADDRESS_BYTES} bytes: {item[:60]!r}...")
    return address


def parse_item(item: str) -> list[Entry]:
    """The targets of one item (several for C{joe fred}); L{EntryError} when it cannot be read."""
    path = _include_path(item)
    if path is not None:
        return [Entry(INCLUDE, path)]
    text = item
    if item.startswith('"'):
        try:
            tokens = tokenize(item)
        except TokenError as e:
            raise EntryError(f"{item!r}: {e}") from None
        if len(tokens) == 1 and tokens[0].kind == QUOTE and tokens[0].text[:1] in ("|", "/"):
            text = tokens[0].text
    if text[:1] in ("|", "/") and "@" not in _outside_quotes(item):
        if text.startswith("/"):
            return [Entry(FILE, _check_address(text, item))]
        command = text[1:].strip()
        if not command:
            raise EntryError(f"empty program in {item!r}")
        return [Entry(PROGRAM, command)]
    try:
        parsed = parse_address_list(item.lstrip("\\"))
    except AddressListError as e:
        raise EntryError(f"{item!r}: {e}") from None
    if any(isinstance(part, GroupStart) for part in parsed):
        raise EntryError(f"address groups are not permitted: {item!r}")
    entries = [Entry(ADDRESS, _check_address(unquote(box.address), item)) for box in mailboxes(parsed)]
    if not entries:
        raise EntryError(f"no address in {item!r}")
    return entries


def parse_list(text: str) -> list[Entry]:
    """Every target of a comma-separated list."""
    return [entry for item in split_items(text) for entry in parse_item(item)]


def qualify(address: str, rewriter: Rewriter) -> str:
    """C{address} completed with qmail-inject's rules (defaulthost, plusdomain, defaultdomain)."""
    try:
        return _check_address(rewriter.envelope(address), address)
    except TokenError as e:
        raise EntryError(f"{address!r}: {e}") from None
