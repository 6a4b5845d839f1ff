"""Tests for pymta.forwarding.aliasfile: /etc/aliases as fastforward's newaliases reads it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.aliasfile import Alias, AliasFileError, alias_key, logical_lines, parse_aliases
from pymta.forwarding.entries import ADDRESS, INCLUDE, PROGRAM, Entry
from pymta.inject.rewrite import Rewriter

REWRITER = Rewriter("me.example", "me.example", "me.example")


class LogicalLinesTests(SynchronousTestCase):
    def test_continuations_and_comments(self) -> None:
        text = "# a comment\n  continued\nroot: a,\n\tb,\n\n  c\nx: y\n"
        self.assertEqual(list(logical_lines(text)),
                         [(1, "# a comment   continued"), (3, "root: a, \tb,    c"), (7, "x: y")])


class ParseTests(SynchronousTestCase):
    def test_aliases(self) -> None:
        text = ("Root: alice, bob@remote.example\n"
                "staff: :include:/etc/staff, \"|archive staff\"\n"
                "owner-staff: alice\n"
                "Postmaster@Me.Example: root\n"
                "@virt.example: catchall\n"
                "root: ignored\n")
        self.assertEqual(parse_aliases(text, REWRITER), [
            Alias("root@", (Entry(ADDRESS, "alice@me.example"), Entry(ADDRESS, "bob@remote.example")), None, 1),
            Alias("staff@", (Entry(INCLUDE, "/etc/staff"), Entry(PROGRAM, "archive staff")),
                  "owner-staff@me.example", 2),
            Alias("owner-staff@", (Entry(ADDRESS, "alice@me.example"),), None, 3),
            Alias("postmaster@me.example", (Entry(ADDRESS, "root@me.example"),), None, 4),
            Alias("@virt.example", (Entry(ADDRESS, "catchall@me.example"),), None, 5),
        ])

    def test_owner_of_a_host_alias(self) -> None:
        [alias, _] = parse_aliases("list@x.example: a@b.example\nowner-list@x.example: c@b.example\n", REWRITER)
        self.assertEqual(alias.owner, "owner-list@x.example")

    def test_errors_name_the_line(self) -> None:
        for text, where in (("a: b\nc: /var/log/c\n", "aliases:2: file deliveries"),
                            ("a: b\nnocolon\n", "aliases:2"), ("a:\n", "aliases:1: a has no targets"),
                            ("a: <x\n", "aliases:1"), ("a b: c\n", "aliases:1")):
            with self.assertRaises(AliasFileError) as caught:
                parse_aliases(text, REWRITER)
            self.assertIn(where, str(caught.exception))

    def test_keys(self) -> None:
        self.assertEqual([alias_key(n) for n in ("Root", "a@B.example", "@B.example")],
                         ["root@", "a@b.example", "@b.example"])
