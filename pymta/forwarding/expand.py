# -*- test-case-name: tests.forwarding.test_expand -*-
"""
fastforward's expansion of one incoming recipient into what to do: the
programs to run and, per envelope sender, the addresses to forward to.

- the recipient is looked up with the wildcards (L{AliasDatabase.lookup});
  an address among the targets that is itself a key (exactly, no
  wildcards) is expanded in its turn instead of being forwarded to;
- C{:include:} files are read (through C{read_include}) when met;
- a target seen before is skipped, so a message reaches an address once
  and an internal loop ends; the same address under a different owner
  counts as different (it is sent once with each sender);
- a key with an owner address sends what it expands to with that sender,
  except a bounce (sender C{<>} or C{#@[]}), which keeps its sender as in
  L{pymta.local.dotqmail.newsender};
- nesting deeper than L{MAX_NESTING} raises L{ExpandError}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from pymta.forwarding.database import AliasDatabase, Target
from pymta.forwarding.entries import ADDRESS, INCLUDE, PROGRAM, Entry

__all__ = ["Plan", "ExpandError", "expand", "MAX_NESTING"]

MAX_NESTING = 30


class ExpandError(Exception):
    """The aliases nest too deeply to be followed."""


@dataclass
class Plan:
    """C{key} the matched key; C{programs} in order; C{forwards} envelope sender -> addresses, in order."""

    key: str
    programs: list[str] = field(default_factory=list)
    forwards: dict[str, list[str]] = field(default_factory=dict)


def expand(db: AliasDatabase, recipient: str, sender: str,
           read_include: Callable[[str], Sequence[Entry]]) -> Plan | None:
    """The L{Plan} for C{recipient}, or None when no key matches it."""
    found = db.lookup(recipient)
    if found is None:
        return None
    key, target = found
    plan = Plan(key)
    seen: set[tuple[str | None, str, str]] = set()
    bounce = sender in ("", "#@[]")

    def follow_target(target: Target, owner: str | None, depth: int) -> None:
        follow(target.targets, target.owner or owner, depth)

    def follow(entries: Sequence[Entry], owner: str | None, depth: int) -> None:
        if depth > MAX_NESTING:
            raise ExpandError(f"aliases nested more than {MAX_NESTING} deep at {recipient}")
        for entry in entries:
            mark = (owner, entry.kind, entry.value.lower() if entry.kind == ADDRESS else entry.value)
            if mark in seen:
                continue
            seen.add(mark)
            if entry.kind == ADDRESS:
                nested = db.exact(entry.value)
                if nested is not None:
                    follow_target(nested, owner, depth + 1)
                else:
                    envelope = sender if owner is None or bounce else owner
                    plan.forwards.setdefault(envelope, []).append(entry.value)
            elif entry.kind == INCLUDE:
                follow(read_include(entry.value), owner, depth + 1)
            elif entry.kind == PROGRAM:
                plan.programs.append(entry.value)

    follow_target(target, None, 0)
    return plan
