"""pymta check and the daemons' checks judge the key files of control/dkimkeys, naming the line."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck import run_checks
from pymta.configcheck.daemonchecks import checkers_of
from pymta.configcheck.dkimkeys import check_dkimkeys
from pymta.configcheck.problem import ERROR
from tests.configcheck.helpers import MAIL_IDS, check, init_root, write
from tests.dkim.helpers import write_keys


class DKIMKeysCheckTests(SynchronousTestCase):
    def root_with_keys(self) -> str:
        root = init_root(self)
        write_keys(root)
        if os.getuid() == 0:
            for name in os.listdir(os.path.join(root, "etc", "dkim")):
                os.chown(os.path.join(root, "etc", "dkim", name), *MAIL_IDS)
        return root

    def test_good_keys(self) -> None:
        root = self.root_with_keys()
        self.assertEqual(check(root, check_dkimkeys), [])
        self.assertEqual([p for p in run_checks(root) if "dkim" in p.path], [])

    def test_bad_mode_and_bad_key(self) -> None:
        root = self.root_with_keys()
        os.chmod(os.path.join(root, "etc", "dkim", "example.com.r1.key"), 0o644)
        write(root, "etc/dkim/example.com.e1.key", b"not a key", 0o600)
        if os.getuid() == 0:
            os.chown(os.path.join(root, "etc", "dkim", "example.com.e1.key"), *MAIL_IDS)
        problems = check(root, check_dkimkeys)
        self.assertEqual([(p.line, p.severity) for p in problems], [(2, ERROR), (3, ERROR)])
        self.assertIn("mode 0644", problems[0].text)
        self.assertIn("neither PEM", problems[1].text)
        self.assertTrue(problems[0].path.endswith("control/dkimkeys"))

    def test_a_syntax_error_is_reported_once_with_the_control_files(self) -> None:
        root = init_root(self)
        write(root, "control/dkimkeys", "example.com:s1\n")
        self.assertEqual(check(root, check_dkimkeys), [])
        found = [p for p in run_checks(root) if p.path.endswith("dkimkeys")]
        self.assertEqual([(p.line, p.severity) for p in found], [(1, ERROR)])

    def test_the_daemons_that_sign_run_it(self) -> None:
        for program in ("pymta-smtpd", "pymta-send", "pymta"):
            self.assertIn(check_dkimkeys, checkers_of(program))
        self.assertNotIn(check_dkimkeys, checkers_of("pymta-pop3d"))
