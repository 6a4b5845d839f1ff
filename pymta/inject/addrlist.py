# -*- test-case-name: tests.inject.test_addrlist -*-
"""
RFC 822/5322 address lists in header fields, parsed the way qmail-inject
treats them, so that every address can be rewritten and the field written
back.

An address list is a sequence of L{Mailbox}es, group markers and commas:

- C{phrase <route-addr>}: the phrase (words, dots, comments) is kept as
  written, the address inside the angle brackets is rewritten;
- a bare C{addr-spec} (C{joe@host (Joe)}): comments move behind the
  address they belong to;
- C{phrase: member, member;}: a group, e.g. C{Cc: recipient list not shown: ;}.

Two addresses with only space between them (C{joe fred@host}) are two
addresses: a comma is put between them when the field is written back.
L{parse_address_list} raises L{AddressListError} for what cannot be read
(unbalanced brackets or quotes, C{>} without C{<}, a C{:} or C{;} out of
place, an unterminated group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, Union

from pymta.inject.tokens import COMMENT, Token, TokenError, tokenize, unquote

__all__ = [
    "AddressListError",
    "Mailbox",
    "GroupStart",
    "GroupEnd",
    "Comma",
    "Item",
    "parse_address_list",
    "rewrite_mailboxes",
    "list_tokens",
    "mailboxes",
]


class AddressListError(ValueError):
    """A header field's address list that cannot be parsed."""


@dataclass
class Mailbox:
    """One address: C{address} holds its tokens (no comments), C{angle} whether it was in C{<>}."""

    address: list[Token]
    phrase: list[Token] = field(default_factory=list)
    angle: bool = False
    comments: list[Token] = field(default_factory=list)

    @property
    def envelope(self) -> str:
        """The address as an envelope address (quotes removed, comments dropped)."""
        return unquote(self.address)


@dataclass
class GroupStart:
    phrase: list[Token]


@dataclass
class GroupEnd:
    pass


@dataclass
class Comma:
    pass


Item = Union[Mailbox, GroupStart, GroupEnd, Comma]


def _bare_mailboxes(pending: list[Token]) -> list[Mailbox]:
    """Split the tokens of a run without angle brackets into addresses at word-word boundaries."""
    boxes: list[Mailbox] = []
    loose_comments: list[Token] = []
    current: Mailbox | None = None
    last_was_word = False
    for token in pending:
        if token.kind == COMMENT:
            if current is None:
                loose_comments.append(token)
            else:
                current.comments.append(token)
            continue
        if token.is_word and last_was_word:
            current = None
        if current is None:
            current = Mailbox(address=[], comments=loose_comments)
            loose_comments = []
            boxes.append(current)
        current.address.append(token)
        last_was_word = token.is_word
    if loose_comments:
        if boxes:
            boxes[-1].comments.extend(loose_comments)
        else:
            # only comments: keep them as an address-less element
            boxes.append(Mailbox(address=[], comments=loose_comments))
    return boxes


def parse_address_list(text: str) -> list[Item]:
    """Parse the value of an address field; raises L{AddressListError}."""
    try:
        tokens = tokenize(text)
    except TokenError as e:
        raise AddressListError(str(e)) from None
    items: list[Item] = []
    pending: list[Token] = []
    in_group = False
    i = 0
    n = len(tokens)

    def flush() -> None:
        for box in _bare_mailboxes(pending):
            items.append(box)
        pending.clear()

    while i < n:
        token = tokens[i]
        kind = token.kind
        if kind == ",":
            flush()
            items.append(Comma())
        elif kind == "<":
            box = Mailbox(address=[], phrase=list(pending), angle=True)
            pending.clear()
            i += 1
            while i < n and tokens[i].kind != ">":
                inner = tokens[i]
                if inner.kind == "<":
                    raise AddressListError("'<' inside '<...>'")
                if inner.kind == COMMENT:
                    box.comments.append(inner)
                else:
                    box.address.append(inner)
                i += 1
            if i >= n:
                raise AddressListError("missing '>'")
            j = i + 1
            while j < n and tokens[j].kind == COMMENT:
                box.comments.append(tokens[j])
                j += 1
            items.append(box)
            i = j
            continue
        elif kind == ">":
            raise AddressListError("'>' without '<'")
        elif kind == ":":
            if in_group:
                raise AddressListError("':' inside a group")
            items.append(GroupStart(phrase=list(pending)))
            pending.clear()
            in_group = True
        elif kind == ";":
            if not in_group:
                raise AddressListError("';' outside a group")
            flush()
            items.append(GroupEnd())
            in_group = False
        else:
            pending.append(token)
        i += 1
    flush()
    if in_group:
        raise AddressListError("group without ';'")
    return items


def mailboxes(items: Sequence[Item]) -> Iterator[Mailbox]:
    """The mailboxes that hold an address (or are C{<>})."""
    for item in items:
        if isinstance(item, Mailbox) and (item.address or item.angle):
            yield item


def rewrite_mailboxes(items: Sequence[Item], rewrite: Callable[[list[Token]], list[Token]]) -> None:
    """Replace each mailbox's address tokens by C{rewrite(tokens)}."""
    for box in mailboxes(items):
        box.address = rewrite(list(box.address))


def _separated(previous: Item | None, current: Item) -> bool:
    """Whether a comma must be added between two adjacent items (an illegal space)."""
    if previous is None:
        return False
    starts_element = isinstance(current, (Mailbox, GroupStart))
    ends_element = isinstance(previous, (Mailbox, GroupEnd))
    return starts_element and ends_element


def list_tokens(items: Sequence[Item]) -> list[Token]:
    """The items as tokens again, commas added between addresses that had only space between them."""
    out: list[Token] = []
    previous: Item | None = None
    for item in items:
        if _separated(previous, item):
            out.append(Token(","))
        if isinstance(item, Mailbox):
            if item.angle:
                out.extend(item.phrase)
                out.append(Token("<"))
                out.extend(item.address)
                out.append(Token(">"))
            else:
                out.extend(item.address)
            out.extend(item.comments)
        elif isinstance(item, GroupStart):
            out.extend(item.phrase)
            out.append(Token(":"))
        elif isinstance(item, GroupEnd):
            out.append(Token(";"))
        else:
            out.append(Token(","))
        previous = item
    return out
