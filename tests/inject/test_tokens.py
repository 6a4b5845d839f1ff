"""Tests for pymta.inject.tokens."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.inject.tokens import (
    ATOM,
    COMMENT,
    LITERAL,
    QUOTE,
    Token,
    TokenError,
    fold,
    quote,
    quote2,
    quote_need,
    render,
    tokenize,
    unquote,
)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text)]


class TokenizeTests(SynchronousTestCase):
    def test_words_and_specials(self) -> None:
        self.assertEqual(
            kinds('Joe "Q. Public" <joe.q@[1.2.3.4]> (the (nested) one);'),
            [(ATOM, "Joe"), (QUOTE, "Q. Public"), ("<", ""), (ATOM, "joe"), (".", ""), (ATOM, "q"),
             ("@", ""), (LITERAL, "1.2.3.4"), (">", ""), (COMMENT, "the (nested) one"), (";", "")],
        )

    def test_whitespace_only_separates(self) -> None:
        self.assertEqual(kinds(" a\t,\r\n b "), [(ATOM, "a"), (",", ""), (ATOM, "b")])

    def test_backslash_escapes(self) -> None:
        self.assertEqual(kinds(r'"a\"b\\c"'), [(QUOTE, 'a"b\\c')])
        self.assertEqual(kinds(r"(a\)b)"), [(COMMENT, "a)b")])
        self.assertEqual(kinds(r"a\,b"), [(ATOM, "a,b")])

    def test_atom_with_bad_characters_becomes_a_quoted_string(self) -> None:
        self.assertEqual(kinds("a)b"), [(QUOTE, "a)b")])
        self.assertEqual(kinds("jö"), [(QUOTE, "jö")])
        self.assertEqual(kinds("plus+"), [(ATOM, "plus+")])

    def test_errors(self) -> None:
        for bad in ('"open', "(open", "(a (b)", "[1.2", ")", "]", 'a "b\\'):
            self.assertRaises(TokenError, tokenize, bad)


class RenderTests(SynchronousTestCase):
    def test_spacing(self) -> None:
        self.assertEqual(render(tokenize("To:joe@x,fred  (F)")), "To: joe@x, fred (F)")
        self.assertEqual(render(tokenize('a:b,c;')), "a: b, c;")
        self.assertEqual(render(tokenize('"x y"<a@b>')), '"x y" <a@b>')
        self.assertEqual(render(tokenize("recipient list not shown: ;")), "recipient list not shown: ;")

    def test_escaping_on_output(self) -> None:
        self.assertEqual(render([Token(ATOM, "a,b:c")]), "a\\,b\\:c")
        self.assertEqual(tokenize(render([Token(ATOM, "a b")])), [Token(ATOM, "a b")])
        self.assertEqual(render([Token(QUOTE, 'a"b')]), '"a\\"b"')
        self.assertEqual(render([Token(COMMENT, "x(y")]), "(x\\(y)")
        self.assertEqual(render([Token(LITERAL, "1]")]), "[1\\]]")

    def test_fold_keeps_short_fields_on_one_line(self) -> None:
        text = "To: joe@mail.example.com, fred@host.example.com, eric@mammoth.plus.example.com"
        self.assertEqual(len(text), 78)
        self.assertEqual(fold(tokenize(text)), text + "\n")

    def test_fold_breaks_after_the_comma_before_the_overflow(self) -> None:
        text = "To: joe@mail.example.com, fred@host.example.com, eric@mammoth.plus.example.com1"
        self.assertEqual(
            fold(tokenize(text)),
            "To: joe@mail.example.com, fred@host.example.com,\n  eric@mammoth.plus.example.com1\n",
        )

    def test_fold_continuation_lines_pack_too(self) -> None:
        addresses = [f"user{i:02d}@example.com" for i in range(12)]
        folded = fold(tokenize("Cc: " + ", ".join(addresses)))
        lines = folded.rstrip("\n").split("\n")
        self.assertGreater(len(lines), 2)
        for line in lines[1:]:
            self.assertTrue(line.startswith("  user"))
        for line in lines:
            self.assertLessEqual(len(line), 78)
        self.assertEqual(tokenize(folded), tokenize("Cc: " + ", ".join(addresses)))

    def test_unquote(self) -> None:
        self.assertEqual(unquote(tokenize('"joe smith"@[1.2.3.4] (c)')), "joe smith@[1.2.3.4]")


class QuoteTests(SynchronousTestCase):
    def test_quote_need(self) -> None:
        for local in ("joe", "a.b", "a+b", "!#$%&'*+-/=?^_`{|}~"):
            self.assertFalse(quote_need(local), local)
        for local in ("", "a b", ".a", "a.", "a..b", "a@b", "a(b", "jö", 'a"b', "a\\b"):
            self.assertTrue(quote_need(local), local)

    def test_quote2(self) -> None:
        self.assertEqual(quote2(""), "")
        self.assertEqual(quote2("joe@x"), "joe@x")
        self.assertEqual(quote2("joe smith@x"), '"joe smith"@x')
        self.assertEqual(quote2("a@b@c"), '"a@b"@c')
        self.assertEqual(quote2('q"x'), '"q\\"x"')
        self.assertEqual(quote("a\nb"), '"a\\\nb"')


_local_chars = st.characters(min_codepoint=32, max_codepoint=126)
_domain = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)


class TokenProperties(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.text(_local_chars, min_size=1, max_size=30), _domain)
    def test_quote2_unquote_round_trip(self, local: str, domain: str) -> None:
        """Any printable local part survives quoting, tokenizing and unquoting."""
        address = f"{local}@{domain}"
        self.assertEqual(unquote(tokenize(quote2(address))), address)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from([ATOM, QUOTE, LITERAL, COMMENT, ",", "@", ".", "<", ">", ":", ";"]),
                              st.text(_local_chars, max_size=12)), max_size=25))
    @example([(ATOM, "\\:")])
    def test_render_then_tokenize_is_identity(self, pairs: list[tuple[str, str]]) -> None:
        tokens = []
        for kind, text in pairs:
            if kind == ATOM:
                tokens.extend(tokenize(text)[:1] if tokenize_ok(text) else [])
                continue
            tokens.append(Token(kind, text if kind in (QUOTE, LITERAL, COMMENT) else ""))
        tokens = [t for t in tokens if not (t.kind == ATOM and not t.text)]
        self.assertEqual(tokenize(render(tokens)), tokens)
        self.assertEqual(tokenize(fold(tokens)), tokens)


def tokenize_ok(text: str) -> bool:
    try:
        result = tokenize(text)
    except TokenError:
        return False
    return bool(result) and result[0].kind == ATOM
