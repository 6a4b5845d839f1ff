"""Envelope policy: qmail's address parsing, badmailfrom, rcpthosts, RELAYCLIENT, relay tricks, localiphost."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import load_controls
from pymta.smtpd import policy
from tests.smtpd.helpers import make_root


class ParsePath(SynchronousTestCase):
    def test_qmail_cases(self) -> None:
        cases = {
            "FROM:<a@b>": "a@b",
            "FROM:<>": "",
            "": "",
            "FROM: a@b rest": "a@b",
            "TO:<noat>": "noat",
            'TO:<"quoted x"@test.example>': "quoted x@test.example",
            "TO:<@r1,@r2:u@d>": "u@d",
            "TO:<a\\>b@d>": "a>b@d",
            'TO:<"a>b"@d>': "a>b@d",
            "TO:<unterminated@d": "unterminated@d",
        }
        for arg, want in cases.items():
            self.assertEqual(policy.parse_path(arg).address, want, arg)

    def test_parameters(self) -> None:
        parsed = policy.parse_path("FROM:<a@b> SIZE=100 body=8BITMIME")
        self.assertEqual(policy.parse_mail_parameters(parsed.parameters), {"SIZE": "100", "BODY": "8BITMIME"})

    @given(st.text(alphabet='<>:@ "\\ab.=', max_size=24))
    def test_same_as_the_character_walk(self, argument: str) -> None:
        """The shortcut for addresses without quotes or escapes parses exactly as qmail's walk over each character."""
        self.assertEqual(policy.parse_path(argument), walk_path(argument))


def walk_path(argument: str) -> policy.MailArgument:
    """qmail-smtpd's parse, one character at a time (the reference for L{policy.parse_path})."""
    if "<" in argument:
        rest, terminator = argument[argument.index("<") + 1 :], ">"
    else:
        colon = argument.find(":")
        rest, terminator = (argument[colon + 1 :] if colon != -1 else argument).lstrip(" "), " "
    if rest.startswith("@"):
        colon = rest.find(":")
        rest = rest[colon + 1 :] if colon != -1 else ""
    out, escaped, quoted, end = [], False, False, len(rest)
    for i, ch in enumerate(rest):
        if escaped:
            out.append(ch)
            escaped = False
        elif not quoted and ch == terminator:
            end = i + 1
            break
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        else:
            out.append(ch)
    params = tuple(p for p in rest[end:].split(" ") if p) if end <= len(rest) else ()
    return policy.MailArgument("".join(out), params)


class ControlCharacters(SynchronousTestCase):
    def test_c0_and_del_only(self) -> None:
        for code in range(0x110):
            want = code < 32 or code == 127
            self.assertEqual(policy.has_control_character(f"a{chr(code)}b@d"), want, code)
        self.assertFalse(policy.has_control_character(""))


class Decisions(SynchronousTestCase):
    def controls(self, **files: str):  # type: ignore[no-untyped-def]
        return load_controls(make_root(self.mktemp(), **files))

    def test_open_relay_without_rcpthosts(self) -> None:
        c = self.controls()
        self.assertEqual(policy.rcpt_decision(c, "u@anywhere", relayclient=None, authenticated=False).reply, "250 ok")

    def test_rcpthosts_and_morercpthosts(self) -> None:
        c = self.controls(rcpthosts="a.example\n.b.example", morercpthosts="c.example")
        ok = lambda r: policy.rcpt_decision(c, r, relayclient=None, authenticated=False).recipient is not None  # noqa: E731
        self.assertTrue(ok("u@A.example"))
        self.assertTrue(ok("u@x.b.example"))
        self.assertFalse(ok("u@b.example"))
        self.assertTrue(ok("u@c.example"))
        self.assertFalse(ok("u@d.example"))
        self.assertTrue(ok("noat"))
        for trick in ("u%d.example@a.example", "d.example!u@a.example", "u@d.example@a.example"):
            self.assertFalse(ok(trick), trick)

    def test_relayclient_and_auth(self) -> None:
        c = self.controls(rcpthosts="a.example")
        d = policy.rcpt_decision(c, "u%x@d.example", relayclient="", authenticated=False)
        self.assertEqual(d.recipient, "u%x@d.example")
        d = policy.rcpt_decision(c, "u@d.example", relayclient=".relay", authenticated=False)
        self.assertEqual(d.recipient, "u@d.example.relay")
        d = policy.rcpt_decision(c, "u@d.example", relayclient=None, authenticated=True)
        self.assertEqual(d.recipient, "u@d.example")

    def test_badmailfrom(self) -> None:
        c = self.controls(badmailfrom="Bad@X.example\n@spam.example")
        self.assertTrue(policy.is_bad_mailfrom(c, "bad@x.example"))
        self.assertTrue(policy.is_bad_mailfrom(c, "anyone@SPAM.example"))
        self.assertFalse(policy.is_bad_mailfrom(c, "anyone@sub.spam.example"))
        self.assertFalse(policy.is_bad_mailfrom(c, ""))

    def test_localiphost(self) -> None:
        c = self.controls(localiphost="local.example")
        self.assertEqual(policy.replace_local_ip(c, "u@[10.0.0.1]", ["10.0.0.1"]), "u@local.example")
        self.assertEqual(policy.replace_local_ip(c, "u@[0.0.0.0]", []), "u@local.example")
        self.assertEqual(policy.replace_local_ip(c, "u@[10.0.0.2]", ["10.0.0.1"]), "u@[10.0.0.2]")
