"""Tests for pymta.control."""

import os

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.control import (
    ControlError,
    ControlLines,
    ControlReader,
    ControlTable,
    default_root,
    entry_error,
    load_controls,
    parse_list,
    parse_map,
)


class ControlsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "control"))

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.root, "control", name), "w") as f:
            f.write(text)

    def test_defaults_without_me(self) -> None:
        c = load_controls(self.root)
        self.assertIsNone(c.me)
        self.assertEqual(c.bouncehost, "bouncehost")
        self.assertEqual(c.databytes, 0)
        self.assertEqual(c.concurrencylocal, 10)
        self.assertEqual(c.concurrencyremote, 20)
        self.assertEqual(c.queuelifetime, 604800)
        self.assertEqual(c.timeoutsmtpd, 1200)
        self.assertIsNone(c.rcpthosts)
        self.assertEqual(c.locals, frozenset())
        self.assertEqual(c.bouncefrom, "MAILER-DAEMON")
        self.assertEqual(c.doublebounceto, "postmaster")
        self.assertEqual(c.defaultdelivery, "./Maildir/\n")
        self.assertEqual(c.sources["databytes"], "default")

    def test_me_fallbacks(self) -> None:
        self.write("me", "Mail.Example.COM  \n")
        c = load_controls(self.root)
        self.assertEqual(c.me, "Mail.Example.COM")
        for name in ("bouncehost", "doublebouncehost", "envnoathost", "helohost", "smtpgreeting",
                     "localiphost", "defaulthost", "defaultdomain", "plusdomain", "idhost"):
            self.assertEqual(getattr(c, name), "Mail.Example.COM", name)
            self.assertEqual(c.sources[name], "me")
        self.assertEqual(c.locals, frozenset(["mail.example.com"]))

    def test_lists_skip_comments_and_blanks(self) -> None:
        self.write("rcpthosts", "# comment\nExample.com \t\n\n.sub.example.org\n")
        c = load_controls(self.root)
        self.assertEqual(c.rcpthosts, frozenset(["example.com", ".sub.example.org"]))
        self.assertTrue(c.accepts_rcpthost("EXAMPLE.COM"))
        self.assertTrue(c.accepts_rcpthost("a.sub.example.org"))
        self.assertFalse(c.accepts_rcpthost("sub.example.org"))
        self.assertFalse(c.accepts_rcpthost("other.net"))

    def test_morercpthosts(self) -> None:
        self.write("rcpthosts", "example.com\n")
        self.write("morercpthosts", "more.example\n")
        self.assertTrue(load_controls(self.root).accepts_rcpthost("more.example"))

    def test_no_rcpthosts_accepts_everything(self) -> None:
        self.assertTrue(load_controls(self.root).accepts_rcpthost("anything.example"))

    def test_int_malformed_names_file_and_line(self) -> None:
        self.write("databytes", "lots\n")
        e = self.assertRaises(ControlError, load_controls, self.root)
        self.assertIn("databytes:1", str(e))

    def test_int_value(self) -> None:
        self.write("databytes", "1000000\n\n# ten megabytes, said the old admin\n")
        self.assertEqual(load_controls(self.root).databytes, 1000000)

    def refused(self, name: str, text: str, lineno: int, reason: str) -> ControlError:
        """C{text} in control/C{name} is a ControlError at line C{lineno} whose message has C{reason}."""
        self.write(name, text)
        e = self.assertRaises(ControlError, load_controls, self.root)
        path = os.path.join(self.root, "control", name)
        self.assertEqual((e.path, e.lineno), (path, lineno), str(e))
        self.assertTrue(str(e).startswith(f"{path}:{lineno}: "), str(e))
        self.assertIn(reason, str(e))
        os.unlink(path)
        return e

    def test_single_value_further_line_refused(self) -> None:
        # qmail reads the first line only: a second value would be silently ignored
        self.refused("databytes", "1000000\n2000000\n", 2, "only the first line is read")
        self.refused("me", "mail.example.org\n# comment\nother.example.org\n", 3, "'other.example.org'")
        self.refused("smtpgreeting", "mail.example.org ESMTP\nwelcome\n", 2, "would be ignored")

    def test_single_value_under_empty_first_line_refused(self) -> None:
        self.refused("concurrencyremote", "\n5\n", 2, "the value must be on the first line")
        self.refused("helohost", "\n\nmail.example.org\n", 3, "the value must be on the first line")

    def test_host_files_refuse_blanks_and_non_names(self) -> None:
        self.refused("me", "mail example.org\n", 1, "blank inside")
        self.refused("helohost", " mail.example.org\n", 1, "blank at the start")
        self.refused("envnoathost", "example.org.\n", 1, "empty label")
        self.refused("bouncehost", "*.example.org\n", 1, "'*'")
        self.refused("bouncefrom", "MAILER-DAEMON@example.org\n", 1, "'@' in the local part")
        self.refused("doublebounceto", " postmaster\n", 1, "blank at the start")

    def test_host_files_accept_names_and_literals(self) -> None:
        self.write("me", "Mail.Example.org\n")
        self.write("localiphost", "[192.0.2.1]\n")
        self.write("smtpgreeting", "mail.example.org ESMTP be nice\n")
        c = load_controls(self.root)
        self.assertEqual((c.localiphost, c.smtpgreeting), ("[192.0.2.1]", "mail.example.org ESMTP be nice"))

    def test_list_blanks_refused(self) -> None:
        # a leading blank makes an entry that never matches (the case); so does one inside
        self.refused("rcpthosts", "example.com\n example.org\n", 2, "blank at the start")
        self.refused("morercpthosts", "# x\nexample org\n", 2, "blank inside")
        self.refused("locals", "\texample.org\n", 1, "blank at the start")
        self.refused("badmailfrom", "spam mer@example.net\n", 1, "blank inside")
        self.refused("percenthack", " example.org\n", 1, "blank at the start")
        self.refused("qmqpservers", "192.0.2.1\n 192.0.2.2\n", 2, "blank at the start")

    def test_list_entries_that_never_match_refused(self) -> None:
        self.refused("rcpthosts", "example.com\n*.example.com\n", 2, "'*'")
        self.refused("rcpthosts", "user@example.com\n", 1, "'@'")
        self.refused("rcpthosts", "[256.1.1.1]\n", 1, "not an address literal")
        self.refused("locals", "mail.example.org\n.example.org\n", 2, "whole domains only")
        self.refused("percenthack", ".example.org\n", 1, "whole domains only")
        self.refused("badmailfrom", "spammer@\n", 1, "nothing after the @")
        self.refused("badmailfrom", "@bad..example\n", 1, "empty label")
        self.refused("qmqpservers", "qmqp.example\n", 1, "not an IP address")
        self.refused("qmqpservers", "192.0.2.1:notaport\n", 1, "bad port")
        self.refused("qmqpservers", "192.0.2.1:\n", 1, "empty port")
        self.refused("qmqpservers", "[2001:db8::1]:\n", 1, "empty port")
        self.refused("qmqpservers", "[2001:db8::1]628\n", 1, "unexpected text")
        self.refused("qmqpservers", "[2001:db8::1\n", 1, "not an IP address")
        self.refused("qmqpservers", "[192.0.2.1]:99999\n", 1, "bad port '99999'")

    def test_list_good_entries(self) -> None:
        self.write("rcpthosts", "Example.com\n.example.org\n[192.0.2.1]\nlocalhost\n")
        self.write("badmailfrom", "spammer@example.net\n@bad.example\nbareword\n")
        self.write("qmqpservers", "192.0.2.1\n192.0.2.2:628\n2001:db8::1\n[2001:db8::2]:628\n[IPv6:2001:db8::3]\n")
        c = load_controls(self.root)
        self.assertEqual(c.rcpthosts, frozenset(["example.com", ".example.org", "[192.0.2.1]", "localhost"]))
        self.assertEqual(c.badmailfrom, frozenset(["spammer@example.net", "@bad.example", "bareword"]))
        self.assertEqual(len(c.qmqpservers), 5)

    def test_map_repeated_key_refused(self) -> None:
        # qmail lets the last line win: the first one would silently never apply
        e = self.refused("virtualdomains", "Virt.Example:alice\n# x\nvirt.example:bob\n", 3, "repeats line 1")
        self.assertIn("'virt.example'", str(e))

    def test_map_values(self) -> None:
        self.write("virtualdomains", "Virt.Example:alice\n# x\nx@y.example:carol:with:colons\n.sub.example:\n")
        c = load_controls(self.root)
        self.assertEqual(c.virtualdomains["virt.example"], "alice")
        self.assertEqual(c.virtualdomains["x@y.example"], "carol:with:colons")
        self.assertEqual(c.virtualdomains[".sub.example"], "")

    def test_virtualdomains_refused(self) -> None:
        self.refused("virtualdomains", "virt.example :alice\n", 1, "blank inside 'virt.example ' in the key")
        self.refused("virtualdomains", " virt.example:alice\n", 1, "blank at the start")
        self.refused("virtualdomains", "virt.example:al ice\n", 1, "blank inside")
        self.refused("virtualdomains", "virt.example:alice@elsewhere.example\n", 1, "'@' in the prepend")
        self.refused("virtualdomains", "@virt.example:alice\n", 1, "empty local part")
        self.refused("virtualdomains", "*.virt.example:alice\n", 1, "'*'")

    def test_map_without_colon_names_line(self) -> None:
        self.write("virtualdomains", "ok.example:a\n\nbroken.example\n")
        e = self.assertRaises(ControlError, load_controls, self.root)
        self.assertIn("virtualdomains:3", str(e))

    def test_reload_keeps_old_on_error(self) -> None:
        self.write("databytes", "5\n")
        reader = ControlReader(self.root)
        seen = []
        reader.on_reload(seen.append)
        self.write("databytes", "x\n")
        self.assertRaises(ControlError, reader.reload)
        self.assertEqual(reader.current.databytes, 5)
        self.write("databytes", "7\n")
        reader.reload()
        self.assertEqual(reader.current.databytes, 7)
        self.assertEqual(len(seen), 1)

    def test_defaultdelivery_multiline(self) -> None:
        self.write("defaultdelivery", "./Maildir/\n|echo hi\n\n")
        self.assertEqual(load_controls(self.root).defaultdelivery, "./Maildir/\n|echo hi\n")

    def test_extra_lines(self) -> None:
        self.write("rbls", "# zones\nzen.example\n")
        c = load_controls(self.root)
        self.assertEqual(c.extra_lines("rbls"), ["zen.example"])
        self.assertIsNone(c.extra_lines("absent"))

    def test_extra_lines_know_their_lines(self) -> None:
        self.write("rbls", "# zones\nzen.example\n\nbad zone\n")
        lines = load_controls(self.root).extra_lines("rbls")
        assert isinstance(lines, ControlLines)
        error = lines.error(1, "not a zone")
        self.assertEqual(str(error), f"{os.path.join(self.root, 'control', 'rbls')}:4: not a zone")
        self.assertEqual(str(entry_error(["a", "b"], 1, "why", "rbls")), "rbls:2: why")
        self.assertEqual(str(entry_error(lines, 0, "why", "rbls")), f"{lines.path}:2: why")

    def test_extra_lines_read_once_per_snapshot(self) -> None:
        # a change applies at the next reload, like qmail's files (and after the checks saw it)
        self.write("rbls", "one.example\n")
        c = load_controls(self.root)
        self.assertEqual(c.extra_lines("rbls"), ["one.example"])
        self.write("rbls", "two.example\n")
        self.assertEqual(c.extra_lines("rbls"), ["one.example"])
        self.assertEqual(load_controls(self.root).extra_lines("rbls"), ["two.example"])

    def test_checks_approve_start_and_reload(self) -> None:
        self.write("rbls", "good\n")
        reader = ControlReader(self.root)
        seen: list[object] = []

        def check(controls) -> None:
            lines = controls.extra_lines("rbls") or []
            for i, entry in enumerate(lines):
                if entry != "good":
                    raise lines.error(i, "not good")
            seen.append(controls)

        reader.add_check(check)
        self.assertEqual(seen, [reader.current])
        old = reader.current
        self.write("rbls", "good\nbad\n")
        self.write("databytes", "5\n")
        e = self.assertRaises(ControlError, reader.reload)
        self.assertEqual(e.lineno, 2)
        self.assertIs(reader.current, old)
        self.assertEqual(reader.current.databytes, 0)
        self.write("rbls", "good\n")
        reader.reload()
        self.assertEqual(reader.current.databytes, 5)

    def test_check_refuses_start(self) -> None:
        self.write("rbls", "bad\n")
        reader = ControlReader(self.root)

        def check(controls) -> None:
            raise controls.extra_lines("rbls").error(0, "not good")

        e = self.assertRaises(ControlError, reader.add_check, check)
        self.assertIn("rbls:1: not good", str(e))


class DefaultRootTests(unittest.SynchronousTestCase):
    def test_given_environment(self) -> None:
        self.assertEqual(default_root({"PYMTA_ROOT": "/srv/mail"}), "/srv/mail")
        self.assertEqual(default_root({"PYMTA_ROOT": ""}), "/var/pymta")
        self.assertEqual(default_root({}), "/var/pymta")

    def test_process_environment(self) -> None:
        self.patch(os, "environ", {"PYMTA_ROOT": "/from/environ"})
        self.assertEqual(default_root(), "/from/environ")
        self.patch(os, "environ", {})
        self.assertEqual(default_root(), "/var/pymta")


class ParseFunctionTests(unittest.SynchronousTestCase):
    def test_parse_list_refuses_blanks(self) -> None:
        self.assertEqual(parse_list(["Example.com", "# x", ""]), frozenset(["example.com"]))
        e = self.assertRaises(ControlError, parse_list, ["ok.example", " bad.example"], "/c/rcpthosts")
        self.assertEqual(str(e), "/c/rcpthosts:2: blank at the start of ' bad.example': such an entry never matches")

    def test_parse_map_lines(self) -> None:
        table = parse_map("/c/smtproutes", ["# x", "a.example:relay", "", ":smarthost"])
        assert isinstance(table, ControlTable)
        self.assertEqual(table.linenos, {"a.example": 2, "": 4})
        self.assertEqual(str(table.error("", "why")), "/c/smtproutes:4: why")


class ParseMapProperties(unittest.TestCase):
    @given(st.lists(st.tuples(st.text("abc.-@", min_size=1), st.text("xyz:-", max_size=5)), max_size=20))
    def test_keys_and_repeats(self, pairs) -> None:
        lines = [f"{k}:{v}" for k, v in pairs]
        expected: dict[str, str] = {}
        repeated = False
        for k, v in pairs:
            if k.startswith("#"):
                continue
            repeated = repeated or k.lower() in expected
            expected.setdefault(k.lower(), v.rstrip(" \t\r"))
        if repeated:
            self.assertRaises(ControlError, parse_map, "vd", lines)
        else:
            self.assertEqual(parse_map("vd", lines), expected)


class DeadlineAndPOP3LimitControls(unittest.SynchronousTestCase):
    """mindatarate, concurrencypop3, concurrencypop3perip: strict numbers with their minimums."""

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "control"))

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.root, "control", name), "w") as f:
            f.write(text)

    def test_defaults(self) -> None:
        c = load_controls(self.root)
        self.assertEqual((c.mindatarate, c.concurrencypop3, c.concurrencypop3perip), (100, 40, 10))

    def test_values(self) -> None:
        self.write("mindatarate", "0\n")
        self.write("concurrencypop3", "200\n")
        self.write("concurrencypop3perip", "3\n")
        c = load_controls(self.root)
        self.assertEqual((c.mindatarate, c.concurrencypop3, c.concurrencypop3perip), (0, 200, 3))

    def test_refused(self) -> None:
        for name, text in (("concurrencypop3", "0"), ("concurrencypop3perip", "0"), ("mindatarate", "-5"),
                           ("mindatarate", "fast"), ("concurrencypop3", "10 sessions")):
            self.write(name, text + "\n")
            e = self.assertRaises(ControlError, load_controls, self.root)
            self.assertEqual((os.path.basename(e.path), e.lineno), (name, 1))
            os.remove(os.path.join(self.root, "control", name))
