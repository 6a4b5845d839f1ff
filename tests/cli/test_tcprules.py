"""pymta tcprules: checking a rules file, tcprules' messages and exit codes, --check lookups."""

from __future__ import annotations

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import tcprules


class TcpRulesCommand(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "etc"))
        self.path = os.path.join(self.root, "etc", "tcp.smtp")

    def run_cmd(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        code = tcprules.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def test_ok(self) -> None:
        self.write('# comment\n127.:allow,RELAYCLIENT=""\n10.0.0.1-3:deny\n:allow\n')
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("ok, 5 rule keys", out)

    def test_parse_error(self) -> None:
        self.write("127.:allow\n1.2.3.4:maybe\n")
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual(code, 100)
        self.assertIn("tcprules: fatal: unable to parse this line: 1.2.3.4:maybe\n", err)
        self.assertIn(":2\n", err)

    def test_rule_that_never_applies(self) -> None:
        self.write("127.:allow\n127.0.0.1 :deny\n:allow\n")
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual((code, out), (100, ""))
        self.assertEqual(err, "tcprules: fatal: blank in the address '127.0.0.1 ': 127.0.0.1 :deny\n"
                              f"tcprules: {self.path}:2\n")

    def test_unterminated_quote(self) -> None:
        self.write('127.:allow,RELAYCLIENT="x\n')
        self.assertEqual(self.run_cmd(self.path)[0], 100)

    def test_missing_file(self) -> None:
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual(code, 111)
        self.assertIn("tcprules: fatal: unable to read", err)

    def test_check_specificity(self) -> None:
        self.write('127.:allow,RELAYCLIENT=""\n127.0.0.1:deny\n=.example.com:allow,X="y"\n:allow\n')
        code, out, _ = self.run_cmd("--root", self.root, "--check", "127.0.0.1")
        self.assertEqual(out, "rule 127.0.0.1: (line 2)\ndeny connection\n")
        code, out, _ = self.run_cmd("--root", self.root, "--check", "127.0.0.2")
        self.assertEqual(out, "rule 127.: (line 1)\nset environment variable RELAYCLIENT=\nallow connection\n")
        code, out, _ = self.run_cmd("--root", self.root, "--check", "192.0.2.1", "--host", "mx.Example.com")
        self.assertEqual(out, 'rule =.example.com: (line 3)\nset environment variable X=y\nallow connection\n')

    def test_usage_error(self) -> None:
        self.assertEqual(self.run_cmd("--bogus")[0], 100)

    def test_partly_taken_range_is_a_warning(self) -> None:
        self.write("10.0.0.5:deny\n10.0.0.1-255:allow\n")
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual(code, 0)
        self.assertIn("ok, 255 rule keys", out)
        self.assertEqual(err, f"tcprules: warning: {self.path}:2: earlier lines already have a rule for '10.0.0.5' "
                              "(line 1); this line applies to its other 254 addresses\n")
        code, out, err = self.run_cmd("--root", self.root, "--check", "10.0.0.5")
        self.assertEqual(code, 0)
        self.assertIn("(line 1)", out)
        self.assertIn("deny connection", out)

    def test_wholly_taken_range_is_refused(self) -> None:
        self.write("10.0.0.5:deny\n10.0.0.4:deny\n10.0.0.4-5:allow\n")
        code, out, err = self.run_cmd("--root", self.root)
        self.assertEqual(code, 100)
        self.assertIn("tcprules: fatal: every address of this line already has a rule (lines 1, 2;", err)
        self.assertIn(f"tcprules: {self.path}:3", err)
