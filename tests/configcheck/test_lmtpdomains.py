"""pymta check: an lmtproutes domain that locals or virtualdomains give to local delivery is a warning."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck import CHECKERS
from pymta.configcheck.controlfiles import check_control_files
from pymta.configcheck.lmtpdomains import check_lmtp_domains
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import check, init_root, located, write


class LMTPDomainsTests(SynchronousTestCase):
    def test_local_and_virtual_domains_are_warned_about(self) -> None:
        root = init_root(self)
        write(root, "control/locals", "mx.example.test\nlocal.example\n")
        write(root, "control/virtualdomains", "virtual.example:joe\nremote.virtual.example:\n")
        write(root, "control/lmtproutes", "\n".join([
            "# mailbox domains",
            "mail.example:unix:/run/dovecot/lmtp",
            "local.example:unix:/run/dovecot/lmtp",
            "Virtual.example:127.0.0.1:24",
            "remote.virtual.example:127.0.0.1",
            ".local.example:unix:/run/dovecot/lmtp",
        ]) + "\n")
        problems = check(root, check_lmtp_domains)
        self.assertEqual(located(root, problems), [("control/lmtproutes", 3, WARNING), ("control/lmtproutes", 4, WARNING)])
        self.assertIn("local.example is delivered locally (control/locals)", problems[0].text)
        self.assertIn("virtual.example is delivered locally (control/virtualdomains)", problems[1].text)
        self.assertIn(check_lmtp_domains, CHECKERS)

    def test_a_bad_file_is_the_control_files_check_to_report(self) -> None:
        root = init_root(self)
        write(root, "control/lmtproutes", "mail.example:unix:relative\nmx.example.test:unix:/run/lmtp\n")
        self.assertEqual(located(root, check(root, check_lmtp_domains)), [("control/lmtproutes", 2, WARNING)])
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/lmtproutes", 1, ERROR)])
        self.assertIn("absolute path", problems[0].text)

    def test_absent(self) -> None:
        self.assertEqual(check(init_root(self), check_lmtp_domains), [])
