"""Tests for pymta.inject.rewrite (qmail-inject's address completion)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.inject.rewrite import Rewriter, RewriteConfigError
from pymta.inject.tokens import TokenError, tokenize, unquote

REWRITER = Rewriter(defaulthost="mail.example.com", defaultdomain="example.com", plusdomain="plus.example.com")


class RewriteTests(SynchronousTestCase):
    def check(self, given_address: str, expected: str) -> None:
        self.assertEqual(REWRITER.envelope(given_address), expected, given_address)

    def test_reference_examples(self) -> None:
        self.check("joe", "joe@mail.example.com")
        self.check("fred@host", "fred@host.example.com")
        self.check("eric@mammoth+", "eric@mammoth.plus.example.com")

    def test_complete_addresses_untouched(self) -> None:
        self.check("a@b.c", "a@b.c")
        self.check("a@[10.0.0.1]", "a@[10.0.0.1]")

    def test_null_and_empty_literal_untouched(self) -> None:
        self.check("", "")
        self.check("x@[]", "x@[]")

    def test_trailing_dot_and_at(self) -> None:
        self.check("joe@host.", "joe@host.example.com")
        self.check("joe@", "joe@mail.example.com")
        self.check("joe@.", "joe@mail.example.com")

    def test_source_route_dropped(self) -> None:
        self.assertEqual(unquote(REWRITER.tokens(tokenize("@r1,@r2:joe@x.y"))), "joe@x.y")
        self.assertEqual(REWRITER.tokens(tokenize("@r1")), [])

    def test_envelope_text_is_quoted_first(self) -> None:
        # as qmail-inject's arguments: the local part is one quoted word, no route parsing
        self.check("@r1,@r2:joe@x.y", "@r1,@r2:joe@x.y")

    def test_plus_without_at(self) -> None:
        self.check("joe+", "joe+@mail.example.com")
        self.check("joe@mail+", "joe@mail.plus.example.com")

    def test_quoted_local_part(self) -> None:
        self.check("joe smith", "joe smith@mail.example.com")
        self.check("a@b@c", "a@b@c.example.com")

    def test_unparsable(self) -> None:
        self.assertRaises(TokenError, REWRITER.envelope, "a@(b")

    def test_bad_configuration(self) -> None:
        self.assertRaises(RewriteConfigError, Rewriter, "(bad", "x", "y")


_plain_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True).filter(
    lambda s: not s.endswith(".") and ".." not in s and not s.endswith("+")
)
_host = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)


class RewriteProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(_plain_local, st.one_of(st.none(), _host))
    def test_result_is_complete_and_rewriting_is_idempotent(self, local: str, host: str | None) -> None:
        address = local if host is None else f"{local}@{host}"
        once = REWRITER.envelope(address)
        self.assertIn("@", once)
        self.assertIn(".", once.rsplit("@", 1)[1])
        self.assertEqual(REWRITER.envelope(once), once)
        self.assertTrue(once.startswith(local + "@"))

    @settings(max_examples=200, deadline=None)
    @given(_plain_local, _host.filter(lambda h: "." in h))
    def test_dotted_hosts_are_kept(self, local: str, host: str) -> None:
        self.assertEqual(REWRITER.envelope(f"{local}@{host}"), f"{local}@{host}")
