"""Tests for pymta.forwarding.expand: fastforward's expansion of one recipient."""

from __future__ import annotations

from typing import Sequence

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.database import AliasDatabase, Target
from pymta.forwarding.entries import ADDRESS, INCLUDE, PROGRAM, Entry
from pymta.forwarding.expand import MAX_NESTING, ExpandError, Plan, expand


def a(address: str) -> Entry:
    return Entry(ADDRESS, address)


DB = AliasDatabase({
    "everybody@yp.to": Target((a("programmers@yp.to"), a("testers@yp.to")), None),
    "programmers@yp.to": Target((a("joe@yp.to"), a("bob@yp.to")), None),
    "testers@yp.to": Target((a("joe@yp.to"), a("fred@yp.to"), Entry(PROGRAM, "log-tests")), None),
    "list@": Target((Entry(INCLUDE, "/lists/list"), a("joe@yp.to")), "owner-list@yp.to"),
    "both@": Target((a("joe@yp.to"), a("list@yp.to"), a("list@x.example")), None),
    "list@x.example": Target((a("joe@yp.to"),), "owner-list@yp.to"),
    "loop1@x.example": Target((a("loop2@x.example"),), None),
    "loop2@x.example": Target((a("loop1@x.example"), a("out@x.example")), None),
    "@x.example": Target((a("catchall@yp.to"),), None),
})

LISTS = {"/lists/list": [a("ann@yp.to"), Entry(INCLUDE, "/lists/list"), a("joe@yp.to")]}


def read(path: str) -> Sequence[Entry]:
    return LISTS[path]


class ExpandTests(SynchronousTestCase):
    def test_duplicates_and_nesting(self) -> None:
        self.assertEqual(expand(DB, "Everybody@YP.to", "s@z", read),
                         Plan("everybody@yp.to", ["log-tests"], {"s@z": ["joe@yp.to", "bob@yp.to", "fred@yp.to"]}))

    def test_owner_and_include(self) -> None:
        self.assertEqual(expand(DB, "list@anywhere.example", "s@z", read),
                         Plan("list@", [], {"owner-list@yp.to": ["ann@yp.to", "joe@yp.to"]}))

    def test_a_bounce_keeps_its_sender(self) -> None:
        self.assertEqual(expand(DB, "list@h", "", read), Plan("list@", [], {"": ["ann@yp.to", "joe@yp.to"]}))

    def test_inside_and_outside_a_list_sends_twice(self) -> None:
        # wildcards apply to the incoming address only: list@yp.to is forwarded to, list@x.example expanded
        self.assertEqual(expand(DB, "both@h", "s@z", read),
                         Plan("both@", [], {"s@z": ["joe@yp.to", "list@yp.to"], "owner-list@yp.to": ["joe@yp.to"]}))

    def test_internal_loop_ends(self) -> None:
        self.assertEqual(expand(DB, "loop1@x.example", "s@z", read),
                         Plan("loop1@x.example", [], {"s@z": ["out@x.example"]}))

    def test_wildcard_and_no_match(self) -> None:
        self.assertEqual(expand(DB, "anyone@x.example", "s@z", read), Plan("@x.example", [], {"s@z": ["catchall@yp.to"]}))
        self.assertIsNone(expand(DB, "nobody@h", "s@z", read))

    def test_too_deep(self) -> None:
        chain = {f"c{i}@": Target((a(f"c{i + 1}@h"),), None) for i in range(MAX_NESTING + 2)}
        chain.update({f"c{i}@h": chain[f"c{i}@"] for i in range(MAX_NESTING + 2)})
        self.assertRaises(ExpandError, expand, AliasDatabase(chain), "c0@h", "s@z", read)
