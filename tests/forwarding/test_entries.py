"""Tests for pymta.forwarding.entries: sendmail's address lists."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.entries import ADDRESS, FILE, INCLUDE, PROGRAM, Entry, EntryError, parse_list, qualify, split_items
from pymta.inject.rewrite import Rewriter


class SplitTests(SynchronousTestCase):
    def test_commas_outside_quotes_comments_and_brackets(self) -> None:
        self.assertEqual(split_items('bob (Bob, the boss), "a, b"@x.example, Joe <j@x, y>, [1,2], , carol'),
                         ["bob (Bob, the boss)", '"a, b"@x.example', "Joe <j@x, y>", "[1,2]", "carol"])

    def test_unbalanced(self) -> None:
        for text in ('"open', "(open", "<open", "[open"):
            self.assertRaises(EntryError, split_items, text)


class ItemTests(SynchronousTestCase):
    def test_addresses(self) -> None:
        self.assertEqual(parse_list('bob (Bob, the postmaster) @heaven.af.mil, Joe Shmoe <shmoe@heaven.af.mil>, '
                                    '"spaced out mailbox"@heaven.af.mil, \\alice, fred susan'),
                         [Entry(ADDRESS, "bob@heaven.af.mil"), Entry(ADDRESS, "shmoe@heaven.af.mil"),
                          Entry(ADDRESS, "spaced out mailbox@heaven.af.mil"), Entry(ADDRESS, "alice"),
                          Entry(ADDRESS, "fred"), Entry(ADDRESS, "susan")])

    def test_programs_and_files(self) -> None:
        self.assertEqual(parse_list('"|weather-server -v", |vacation, "/var/log/mail box", /tmp/x'),
                         [Entry(PROGRAM, "weather-server -v"), Entry(PROGRAM, "vacation"),
                          Entry(FILE, "/var/log/mail box"), Entry(FILE, "/tmp/x")])

    def test_unquoted_at_makes_an_address(self) -> None:
        self.assertEqual(parse_list("|x@example.org"), [Entry(ADDRESS, "|x@example.org")])
        self.assertEqual(parse_list('"|prog a@b"'), [Entry(PROGRAM, "prog a@b")])

    def test_include(self) -> None:
        self.assertEqual(parse_list(':include:/etc/staff, : include : "/etc/other list"'),
                         [Entry(INCLUDE, "/etc/staff"), Entry(INCLUDE, "/etc/other list")])
        self.assertRaises(EntryError, parse_list, ":include:staff")

    def test_refused(self) -> None:
        for text in ("list: a, b;", "<>", '"|"', "a\x01b@example.org", "x" * 1001 + "@example.org"):
            self.assertRaises(EntryError, parse_list, text)

    def test_qualify(self) -> None:
        rewriter = Rewriter("host.example", "example", "plus.example")
        self.assertEqual([qualify(a, rewriter) for a in ("bob", "bob@mail", "bob@x+", "spaced out", "b@x.y")],
                         ["bob@host.example", "bob@mail.example", "bob@x.plus.example", "spaced out@host.example",
                          "b@x.y"])
