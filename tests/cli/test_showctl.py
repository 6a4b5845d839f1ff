"""Tests for pymta.cli.showctl."""

from __future__ import annotations

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.certs import write_self_signed
from pymta.cli import showctl
from pymta.control import SPECS
from pymta.queue.layout import QueueLayout


class ShowctlTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.control = os.path.join(self.root, "control")
        os.makedirs(self.control)
        self.write("me", "mail.example.com\n")

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.control, name), "w") as f:
            f.write(text)

    def show(self) -> tuple[int, str]:
        out = io.StringIO()
        status = showctl.main(["--root", self.root], stdout=out)
        return status, out.getvalue()

    def paragraph(self, output: str, name: str) -> str:
        for block in output.split("\n\n"):
            if block.startswith(name + " ") or block.startswith(name + ":"):
                return block
        self.fail(f"no paragraph for {name}:\n{output}")

    def test_every_control_file_is_listed_with_its_source(self) -> None:
        self.write("databytes", "1000000\n")
        self.write("locals", "# comment\nb.example\na.example\n")
        status, output = self.show()
        self.assertEqual(status, 0)
        for spec in SPECS:
            block = self.paragraph(output, spec.name)
            self.assertIn(f"# {spec.description}; used by {spec.users}", block)
        self.assertEqual(self.paragraph(output, "databytes").split("\n")[0], "databytes (file): 1000000")
        self.assertEqual(self.paragraph(output, "concurrencyremote").split("\n")[0], "concurrencyremote (default): 20")
        self.assertEqual(self.paragraph(output, "helohost").split("\n")[0], "helohost (me): mail.example.com")
        self.assertEqual(self.paragraph(output, "me").split("\n")[0], "me (file): mail.example.com")
        self.assertTrue(self.paragraph(output, "locals").startswith("locals (file): 2 entries\n    a.example\n    b.example\n"))

    def test_defaults_without_me(self) -> None:
        os.unlink(os.path.join(self.control, "me"))
        status, output = self.show()
        self.assertEqual(status, 0)
        self.assertTrue(self.paragraph(output, "me").startswith("me (default): undefined!"))
        self.assertEqual(self.paragraph(output, "bouncehost").split("\n")[0], "bouncehost (default): bouncehost")
        self.assertIn("open relay", self.paragraph(output, "rcpthosts"))
        self.assertEqual(self.paragraph(output, "locals").split("\n")[0], "locals (default): (none)")

    def test_locals_default_comes_from_me(self) -> None:
        _, output = self.show()
        self.assertTrue(self.paragraph(output, "locals").startswith("locals (me): 1 entry\n    mail.example.com\n"))

    def test_tables_and_multiline_values(self) -> None:
        self.write("smtproutes", "example.org:relay.example:2525\n:smarthost.example\n")
        self.write("defaultdelivery", "./Maildir/\n|/usr/bin/filter\n")
        _, output = self.show()
        block = self.paragraph(output, "smtproutes")
        self.assertIn("    example.org:relay.example:2525\n", block)
        self.assertIn("    :smarthost.example\n", block)
        self.assertIn("defaultdelivery (file):\n    ./Maildir/\n    |/usr/bin/filter\n", output)

    def test_malformed_smtproutes_and_extra_files(self) -> None:
        # each used to pass showctl with exit 0
        self.write("smtproutes", "a.example:relay.example\nb.example:relay.example:99999\n")
        self.write("rbls", "zen.example:perm\n")
        self.write("concurrencyperip", "five\n")
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        status, output = self.show()
        self.assertEqual(status, 111)
        routes = os.path.join(self.control, "smtproutes")
        self.assertTrue(self.paragraph(output, "smtproutes").startswith(
            f"smtproutes: Oops! {routes}:2: bad port '99999' (expected 1 to 65535)\n"))
        rbls = os.path.join(self.control, "rbls")
        self.assertTrue(self.paragraph(output, "rbls").startswith(
            f"rbls: Oops! {rbls}:1: expected zone, zone:permanent or +zone, found 'zen.example:perm'\n"))
        self.assertIn("concurrencyperip: Oops! ", output)
        self.assertIn("helohost (me): mail.example.com", output)  # the rest is still listed
        self.assertEqual(sorted(err.getvalue().splitlines()), sorted([
            f"pymta showctl: fatal: {os.path.join(self.control, 'concurrencyperip')}:1: expected a number of sessions,"
            " at least 1, found 'five'",
            f"pymta showctl: fatal: {rbls}:1: expected zone, zone:permanent or +zone, found 'zen.example:perm'",
            f"pymta showctl: fatal: {routes}:2: bad port '99999' (expected 1 to 65535)",
        ]))

    def test_unknown_and_extra_files(self) -> None:
        self.write("frobnicate", "x\n")
        self.write("rbls", "zen.example\n")
        write_self_signed(os.path.join(self.control, "servercert.pem"), "mail.example.com")
        _, output = self.show()
        self.assertIn("\nfrobnicate: I have no idea what this file does.\n", output)
        self.assertIn("\nrbls (file):\n    zen.example\n", output)
        self.assertIn("\nservercert.pem: certificate for mail.example.com, self-signed, valid until ", output)
        self.assertNotIn("PRIVATE", output)

    def test_root_lines(self) -> None:
        QueueLayout(os.path.join(self.root, "queue")).create()
        _, output = self.show()
        self.assertTrue(output.startswith(f"pymta root directory: {self.root}.\nuser-ext delimiter: -.\n"
                                          "subdirectory split: 23.\n"))
        self.assertIn(f"queue owner (mail uid:gid): {os.getuid()}:{os.getgid()}.\n", output)

    def test_malformed_file_111(self) -> None:
        self.write("virtualdomains", "good.example:alice\nno colon here\n")
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.write("databytes", "lots\n")
        self.write("concurrencylocal", "8\n")
        self.write("rbls", "zen.example\n")
        status, output = self.show()
        self.assertIn("\nrbls (file):\n    zen.example\n", output)
        self.assertEqual(status, 111)
        path = os.path.join(self.control, "virtualdomains")
        self.assertIn(f"\nvirtualdomains: Oops! {path}:2: line has no colon", output)
        self.assertIn(f"\ndatabytes: Oops! {os.path.join(self.control, 'databytes')}:1: expected a non-negative", output)
        # the rest is still listed
        self.assertEqual(self.paragraph(output, "concurrencylocal").split("\n")[0], "concurrencylocal (file): 8")
        self.assertEqual(self.paragraph(output, "me").split("\n")[0], "me (file): mail.example.com")
        self.assertEqual(err.getvalue().count("pymta showctl: fatal:"), 2)
        self.assertIn(f"pymta showctl: fatal: {path}:2: line has no colon", err.getvalue())

    def test_missing_root_111(self) -> None:
        out = io.StringIO()
        self.assertEqual(showctl.main(["--root", os.path.join(self.root, "nope")], stdout=out), 111)
        self.assertIn("Oops! Unable to read", out.getvalue())

    def test_non_printable_shown_as_question_marks(self) -> None:
        self.write("smtpgreeting", "hello\x01world\n")
        _, output = self.show()
        self.assertEqual(self.paragraph(output, "smtpgreeting").split("\n")[0], "smtpgreeting (file): hello?world")
