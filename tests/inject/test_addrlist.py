"""Tests for pymta.inject.addrlist."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.inject.addrlist import (
    AddressListError,
    GroupEnd,
    GroupStart,
    list_tokens,
    mailboxes,
    parse_address_list,
    rewrite_mailboxes,
)
from pymta.inject.tokens import render, tokenize


def envelopes(text: str) -> list[str]:
    return [box.envelope for box in mailboxes(parse_address_list(text))]


def rendered(text: str) -> str:
    return render(list_tokens(parse_address_list(text)))


class ParseTests(SynchronousTestCase):
    def test_simple_list(self) -> None:
        self.assertEqual(envelopes("a@b, c@d"), ["a@b", "c@d"])

    def test_display_names_and_angle_addresses(self) -> None:
        items = parse_address_list('"Joe Q. Public" <jqp@x.example>, Mary Smith <mary@y.example>')
        boxes = list(mailboxes(items))
        self.assertEqual([b.envelope for b in boxes], ["jqp@x.example", "mary@y.example"])
        self.assertTrue(all(b.angle for b in boxes))
        self.assertEqual(render(boxes[1].phrase), "Mary Smith")

    def test_comments_move_behind_a_bare_address(self) -> None:
        self.assertEqual(rendered("(Fred) fred@host"), "fred@host (Fred)")
        self.assertEqual(rendered("fred @ host (Fred)"), "fred@host (Fred)")
        self.assertEqual(envelopes("(Fred) fred@host"), ["fred@host"])

    def test_comments_after_angle_address(self) -> None:
        # qmail puts no space between '>' and a comment
        self.assertEqual(rendered("Joe <joe@x> (work)"), "Joe <joe@x>(work)")

    def test_quoted_local_part(self) -> None:
        self.assertEqual(envelopes('"joe smith"@x, "a,b"@y'), ["joe smith@x", "a,b@y"])

    def test_space_between_addresses_becomes_a_comma(self) -> None:
        self.assertEqual(envelopes("joe fred@host"), ["joe", "fred@host"])
        self.assertEqual(rendered("joe fred@host"), "joe, fred@host")
        self.assertEqual(rendered("<a@b> c@d"), "<a@b>, c@d")

    def test_groups(self) -> None:
        items = parse_address_list("friends: a@b, Joe <c@d>;, e@f")
        self.assertIsInstance(items[0], GroupStart)
        self.assertEqual(render(items[0].phrase), "friends")
        self.assertEqual([b.envelope for b in mailboxes(items)], ["a@b", "c@d", "e@f"])
        self.assertTrue(any(isinstance(i, GroupEnd) for i in items))
        self.assertEqual(rendered("friends: a@b, Joe <c@d>;, e@f"), "friends: a@b, Joe <c@d>;, e@f")

    def test_empty_group(self) -> None:
        items = parse_address_list("recipient list not shown: ;")
        self.assertEqual(list(mailboxes(items)), [])
        self.assertEqual(render(list_tokens(items)), "recipient list not shown: ;")

    def test_null_address(self) -> None:
        boxes = list(mailboxes(parse_address_list("<>")))
        self.assertEqual([b.envelope for b in boxes], [""])

    def test_empty_field(self) -> None:
        self.assertEqual(parse_address_list(""), [])
        self.assertEqual(parse_address_list("   "), [])

    def test_source_route_kept_in_tokens(self) -> None:
        self.assertEqual(envelopes("<@relay.example:joe@x>"), ["@relay.example:joe@x"])

    def test_errors(self) -> None:
        for bad in ("<a@b", "a@b>", "g: a@b", "a; b", "g: h: a;;", '"unterminated', "(c", "<a <b>>", "(a))"):
            self.assertRaises(AddressListError, parse_address_list, bad)


class RewriteHookTests(SynchronousTestCase):
    def test_rewrite_applies_to_every_address_including_group_members(self) -> None:
        items = parse_address_list("g: a, b;, Name <c>")
        rewrite_mailboxes(items, lambda tokens: tokens + tokenize("@x.example"))
        self.assertEqual([b.envelope for b in mailboxes(items)], ["a@x.example", "b@x.example", "c@x.example"])
        self.assertEqual(render(list_tokens(items)), "g: a@x.example, b@x.example;, Name <c@x.example>")


_atom = st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}", fullmatch=True)
_local = st.one_of(
    st.lists(_atom, min_size=1, max_size=3).map(".".join),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=10),
)
_domain = st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=3).map(".".join)
_name = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=15)


@st.composite
def address_lists(draw) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Header text of an address list and the envelope addresses it names."""
    from pymta.inject.tokens import quote2

    parts = []
    expected = []
    for _ in range(draw(st.integers(1, 5))):
        address = f"{draw(_local)}@{draw(_domain)}"
        expected.append(address)
        style = draw(st.sampled_from(["bare", "angle", "named", "comment"]))
        if style == "bare":
            parts.append(quote2(address))
        elif style == "angle":
            parts.append(f"<{quote2(address)}>")
        elif style == "named":
            name = draw(_name)
            parts.append('"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{quote2(address)}>')
        else:
            comment = draw(_name).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            parts.append(f"{quote2(address)} ({comment})")
    if draw(st.booleans()):
        return "team: " + ", ".join(parts) + ";", expected
    return ", ".join(parts), expected


class AddressListProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(address_lists())
    def test_parse_finds_every_address(self, case: tuple[str, list[str]]) -> None:
        text, expected = case
        self.assertEqual(envelopes(text), expected)

    @settings(max_examples=300, deadline=None)
    @given(address_lists())
    def test_render_parse_round_trip(self, case: tuple[str, list[str]]) -> None:
        """Writing a parsed list back and parsing it again gives the same addresses and text."""
        text, expected = case
        once = rendered(text)
        self.assertEqual(envelopes(once), expected)
        self.assertEqual(rendered(once), once)

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40))
    def test_arbitrary_text_parses_or_raises_cleanly(self, text: str) -> None:
        try:
            items = parse_address_list(text)
        except AddressListError:
            return
        again = render(list_tokens(items))
        self.assertEqual([b.envelope for b in mailboxes(parse_address_list(again))],
                         [b.envelope for b in mailboxes(items)])
