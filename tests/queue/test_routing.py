"""Table-driven tests for pymta.queue.routing (docs/internals.md, 'Recipient rewriting')."""

from twisted.trial import unittest

from pymta.control import ControlError
from pymta.queue.routing import LOCAL, REMOTE, Route, route_recipient, strip_virtual_prepend, virtual_keys
from tests.queue.helpers import controls_from


VIRTUALDOMAINS = """\
# comment
virt.example:alice-virt
joe@users.example:joe
.wild.example:wild
sub.wild.example:sub
nohost.example:
users.example:usersdom
"""

ROUTING_TABLE = [
    # (recipient, expected channel, expected address)
    ("bob@mail.example", LOCAL, "bob@mail.example"),
    ("Bob@MAIL.Example", LOCAL, "Bob@MAIL.Example"),
    ("bob", LOCAL, "bob@mail.example"),  # envnoathost defaults to me
    ("bob@other.example", REMOTE, "bob@other.example"),
    ("Info@Virt.Example", LOCAL, "alice-virt-Info@Virt.Example"),
    ("joe@users.example", LOCAL, "joe-joe@users.example"),  # user@domain entry beats the domain
    ("ann@users.example", LOCAL, "usersdom-ann@users.example"),
    ("x@a.wild.example", LOCAL, "wild-x@a.wild.example"),
    ("x@sub.wild.example", LOCAL, "sub-x@sub.wild.example"),  # exact domain first
    ("x@a.sub.wild.example", LOCAL, "wild-x@a.sub.wild.example"),  # .sub.wild not listed; .wild.example is
    ("x@wild.example", REMOTE, "x@wild.example"),  # .wild.example does not match wild.example itself
    ("x@nohost.example", REMOTE, "x@nohost.example"),  # empty prepend = remote
    ("u%v@relay.example", LOCAL, "u@v"),  # percenthack first, then v is in locals
]


class RoutingTableTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.controls = controls_from(
            self, me="mail.example\n", virtualdomains=VIRTUALDOMAINS, percenthack="relay.example\nv\n",
            locals="mail.example\nv\n",
        )

    def test_table(self) -> None:
        for recipient, channel, address in ROUTING_TABLE:
            self.assertEqual(route_recipient(recipient, self.controls), Route(channel, address), recipient)

    def test_percenthack_repeats_while_listed(self) -> None:
        c = controls_from(self, me="me.example\n", percenthack="relay.example\nb.example\n")
        self.assertEqual(route_recipient("a%c.example%b.example@relay.example", c), Route(REMOTE, "a@c.example"))
        # c.example is not listed: the remaining % stays
        self.assertEqual(route_recipient("a%x%c.example@relay.example", c), Route(REMOTE, "a%x@c.example"))
        # no % left: stop
        self.assertEqual(route_recipient("plain@relay.example", c), Route(REMOTE, "plain@relay.example"))
        # a domain not listed is left alone
        self.assertEqual(route_recipient("a%b@other.example", c), Route(REMOTE, "a%b@other.example"))

    def test_envnoathost(self) -> None:
        c = controls_from(self, me="me.example\n", envnoathost="noat.example\n")
        self.assertEqual(route_recipient("bob", c), Route(REMOTE, "bob@noat.example"))

    def test_catch_all(self) -> None:
        c = controls_from(self, me="me.example\n", virtualdomains=":catch\nkeep.example:\n")
        self.assertEqual(route_recipient("a@any.example", c), Route(LOCAL, "catch-a@any.example"))
        self.assertEqual(route_recipient("a@keep.example", c), Route(REMOTE, "a@keep.example"))
        self.assertEqual(route_recipient("a@me.example", c), Route(LOCAL, "a@me.example"))

    def test_repeated_key_refused(self) -> None:
        # qmail lets the last line win; pymta refuses the file, as one line would silently never apply
        e = self.assertRaises(ControlError, controls_from, self, me="me.example\n",
                              virtualdomains="d.example:first\nD.example:second\n")
        self.assertIn("virtualdomains:2: key 'd.example' repeats line 1", str(e))

    def test_at_in_local_part_splits_at_last(self) -> None:
        c = controls_from(self, me="me.example\n")
        self.assertEqual(route_recipient('"a@b"@me.example', c).channel, LOCAL)

    def test_virtual_keys_order(self) -> None:
        self.assertEqual(
            virtual_keys("U@A.B.C"), ["u@a.b.c", "a.b.c", ".b.c", ".c", ""]
        )


class StripPrependTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.controls = controls_from(self, me="mail.example\n", virtualdomains=VIRTUALDOMAINS)

    def test_table(self) -> None:
        table = [
            ("alice-virt-Info@Virt.Example", "Info@Virt.Example"),  # domain entry: stripped
            ("wild-x@a.wild.example", "x@a.wild.example"),  # wildcard entry: stripped
            ("joe-joe@users.example", "joe-joe@users.example"),  # users.example prepend is usersdom
            ("usersdom-ann@users.example", "ann@users.example"),
            ("other-x@virt.example", "other-x@virt.example"),  # prepend does not match
            ("bob@nohost.example", "bob@nohost.example"),
            ("bob", "bob"),
        ]
        for recipient, expected in table:
            self.assertEqual(strip_virtual_prepend(recipient, self.controls), expected, recipient)

    def test_user_entry_not_stripped(self) -> None:
        c = controls_from(self, me="m.example\n", virtualdomains="joe@u.example:joe\n")
        self.assertEqual(strip_virtual_prepend("joe-joe@u.example", c), "joe-joe@u.example")


from hypothesis import given, strategies as st  # noqa: E402

_label = st.text(alphabet="abcdefgh", min_size=1, max_size=5)
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join)
_local = st.text(alphabet="abcxyz%.-+", min_size=1, max_size=10)


class RoutingPropertyTests(unittest.SynchronousTestCase):
    @given(_local, _domain, st.sampled_from(["", "virt.example:pre\n", ".b:wild\n", ":all\n", "a:\n"]))
    def test_rewrite_only_prepends(self, local: str, domain: str, virtualdomains: str) -> None:
        c = controls_from(self, me="me.example\n", virtualdomains=virtualdomains)
        address = f"{local}@{domain}"
        route = route_recipient(address, c)
        self.assertTrue(route.address.endswith(address))
        if route.address != address:
            self.assertEqual(route.channel, LOCAL)
            prepend = route.address[: -len(address) - 1]
            self.assertEqual(route.address, f"{prepend}-{address}")
            # a domain, wildcard or catch-all prepend comes off again for the bounce
            self.assertEqual(strip_virtual_prepend(route.address, c), address)
