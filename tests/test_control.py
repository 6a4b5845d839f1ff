"""Tests for pymta.control."""

import os

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.control import ControlError, ControlReader, default_root, load_controls, parse_map


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
        self.write("databytes", "1000000\nignored\n")
        self.assertEqual(load_controls(self.root).databytes, 1000000)

    def test_map_last_duplicate_wins(self) -> None:
        self.write("virtualdomains", "Virt.Example:alice\n# x\nvirt.example:bob\nx@y.example:carol:with:colons\n")
        c = load_controls(self.root)
        self.assertEqual(c.virtualdomains["virt.example"], "bob")
        self.assertEqual(c.virtualdomains["x@y.example"], "carol:with:colons")

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


class ParseMapProperties(unittest.TestCase):
    @given(st.lists(st.tuples(st.text("abc.-@", min_size=1), st.text("xyz:-", max_size=5)), max_size=20))
    def test_last_wins(self, pairs) -> None:
        lines = [f"{k}:{v}" for k, v in pairs]
        table = parse_map("vd", lines)
        expected = {}
        for k, v in pairs:
            if k.startswith("#"):
                continue
            expected[k.lower()] = v.rstrip(" \t\r")
        self.assertEqual(table, expected)


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
