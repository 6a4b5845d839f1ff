"""
smtproutes, tlsdestinations, rbls, concurrencyperip and queuesync through
their daemons' parsers (reported with the control files); queuesync's
warnings and etc/tcp.smtp.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.certs import self_signed_pem
from pymta.configcheck.controlfiles import check_control_files
from pymta.configcheck.extrafiles import check_extra_files, check_tcp_smtp
from pymta.configcheck.problem import ERROR, WARNING
from pymta.queue import syncing
from tests.configcheck.helpers import check, init_root, located, write


class SmtproutesTests(SynchronousTestCase):
    def test_issue_13_item_6(self) -> None:
        """Bad ports, bad addresses and an extra field: each line named."""
        root = init_root(self)
        write(root, "control/smtproutes", "\n".join([
            "a.example:relay.example:notaport",
            "b.example:relay.example:99999",
            "c.example:[256.1.1.1]",
            "d.example:[127.0.0.1:25]",
            "e.example:relay.example:25:extra",
            "# good ones",
            "f.example:relay.example:2525",
            "g.example:[192.0.2.1]:26",
            ":[2001:db8::1]:587",
            "h.example:",
            "i.example::2525",
        ]) + "\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/smtproutes", n, ERROR) for n in (1, 2, 3, 4, 5)])
        self.assertEqual(problems[1].text, "bad port '99999' (expected 1 to 65535)")
        self.assertEqual(problems[3].text, "not an IP address: '[127.0.0.1:25]'")

    def test_absent(self) -> None:
        self.assertEqual(check(init_root(self), check_control_files), [])


class ExtraFileTests(SynchronousTestCase):
    def test_tlsdestinations_ca_file_must_exist(self) -> None:
        root = init_root(self)
        pem = self_signed_pem("ca.example.test")
        ca = write(root, "etc/ca.pem", pem[pem.index(b"-----BEGIN CERTIFICATE-----"):])
        write(root, "control/tlsdestinations", f"a.example:\nb.example:{ca}\nc.example:/no/such/ca.pem\n-d.example\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/tlsdestinations", 3, ERROR)])
        self.assertIn("unable to read the CA file /no/such/ca.pem", problems[0].text)

    def test_queuesync_unknown_mode_is_an_error(self) -> None:
        root = init_root(self)
        write(root, "control/queuesync", "sometimes\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/queuesync", 1, ERROR)])
        self.assertEqual(problems[0].text, "unknown mode 'sometimes' (expected fsync or syncfs)")
        self.assertEqual(check(root, check_extra_files), [])  # reported once, with the control files

    def test_queuesync_warning_is_pymta_sends(self) -> None:
        """syncfs where pymta-send cannot have it: its warning, and fsync."""
        root = init_root(self)
        write(root, "control/queuesync", "syncfs\n")
        self.patch(syncing.os, "uname", lambda: os.uname_result(("Linux", "h", "5.4.0-1", "#1", "x86_64")))
        problems = check(root, check_extra_files)
        self.assertEqual(located(root, problems), [("control/queuesync", 1, WARNING)])
        self.assertEqual(problems[0].text, "syncfs unavailable (kernels before 5.8 do not report syncfs(2) "
                                           "write-back errors); using fsync")
        self.assertEqual(check(root, check_control_files), [])

    def test_read_errors_of_extra_files_name_the_line(self) -> None:
        root = init_root(self)
        write(root, "control/rbls", "zen.example\nbad\0zone\n")
        write(root, "control/concurrencyperip", b"\xff\n")
        problems = check(root, check_control_files)
        self.assertEqual(sorted(located(root, problems)),
                         [("control/concurrencyperip", 1, ERROR), ("control/rbls", 2, ERROR)])

    def test_every_bad_line_of_an_extra_file(self) -> None:
        root = init_root(self)
        write(root, "control/rbls", "zen example\nok.example\nbl.example:sometimes\n")
        write(root, "control/rcptcheck", "yes\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [
            ("control/rbls", 1, ERROR), ("control/rbls", 3, ERROR), ("control/rcptcheck", 1, ERROR),
        ])

    def test_good_files(self) -> None:
        root = init_root(self)
        write(root, "control/rbls", "zen.example\n+allow.example\nbl.example:permanent\n")
        write(root, "control/concurrencyperip", "5\n")
        write(root, "control/queuesync", "fsync\n")
        self.assertEqual(check(root, check_control_files), [])
        self.assertEqual(check(root, check_extra_files), [])


class TcpSmtpTests(SynchronousTestCase):
    def test_every_bad_line(self) -> None:
        root = init_root(self)
        write(root, "etc/tcp.smtp", "1.2.3.4:perhaps\n10.:allow,X=\"1\"\n5.6.7.8:deny,junk\n:allow\n")
        problems = check(root, check_tcp_smtp)
        self.assertEqual(located(root, problems), [("etc/tcp.smtp", 1, ERROR), ("etc/tcp.smtp", 3, ERROR)])
        self.assertEqual(problems[0].text, "unable to parse this line: 1.2.3.4:perhaps")

    def test_blank_before_the_colon_is_a_rule_that_never_applies(self) -> None:
        """Issue 13 item 7: C{127.0.0.1 :deny}."""
        root = init_root(self)
        write(root, "etc/tcp.smtp", "127.0.0.1 :deny\n 10.0.0.1:deny\n::1:allow\n:allow\n")
        problems = check(root, check_tcp_smtp)
        self.assertEqual(located(root, problems), [("etc/tcp.smtp", 1, ERROR), ("etc/tcp.smtp", 2, ERROR)])
        self.assertIn("'127.0.0.1 '", problems[0].text)
        self.assertTrue(problems[0].text.endswith(": 127.0.0.1 :deny"), problems[0].text)

    def test_line_without_a_colon_is_an_error(self) -> None:
        """tcprules ignores such a line; pymta-smtpd refuses it, so pymta check does."""
        root = init_root(self)
        write(root, "etc/tcp.smtp", "# rules\n127.0.0.1 deny\n:allow\n")
        problems = check(root, check_tcp_smtp)
        self.assertEqual(located(root, problems), [("etc/tcp.smtp", 2, ERROR)])
        self.assertIn("no colon", problems[0].text)

    def test_pymta_init_rules_and_no_file(self) -> None:
        root = init_root(self)
        self.assertEqual(check(root, check_tcp_smtp), [])
        write(root, "etc/tcp.smtp", "")
        self.assertEqual(check(root, check_tcp_smtp), [])

    def test_a_range_partly_taken_is_a_warning(self) -> None:
        """A range after an exact address still applies to the others (tcprules): pymta check warns, no error."""
        root = init_root(self)
        write(root, "etc/tcp.smtp", "10.0.0.5:deny\n10.0.0.1-255:allow\n")
        problems = check(root, check_tcp_smtp)
        self.assertEqual(located(root, problems), [("etc/tcp.smtp", 2, WARNING)])
        self.assertEqual(problems[0].text, "earlier lines already have a rule for '10.0.0.5' (line 1); "
                                           "this line applies to its other 254 addresses")

    def test_a_range_wholly_taken_is_an_error(self) -> None:
        root = init_root(self)
        write(root, "etc/tcp.smtp", "10.0.0.1-4:deny\n10.0.0.5:deny\n10.0.0.3-5:allow\n")
        problems = check(root, check_tcp_smtp)
        self.assertEqual(located(root, problems), [("etc/tcp.smtp", 3, ERROR)])
        self.assertIn("every address of this line already has a rule (lines 1, 2;", problems[0].text)
