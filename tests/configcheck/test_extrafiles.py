"""smtproutes, tlsdestinations, rbls, concurrencyperip, queuesync and etc/tcp.smtp through their daemons' parsers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck.extrafiles import check_extra_files, check_smtproutes, check_tcp_smtp
from pymta.configcheck.problem import ERROR, WARNING
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
        problems = check(root, check_smtproutes)
        self.assertEqual(located(root, problems), [("control/smtproutes", n, ERROR) for n in (1, 2, 3, 4, 5)])
        self.assertEqual(problems[1].text, "bad port in smtproutes: '99999'")
        self.assertEqual(problems[3].text, "not an IP address: '[127.0.0.1:25]'")

    def test_absent(self) -> None:
        self.assertEqual(check(init_root(self), check_smtproutes), [])


class ExtraFileTests(SynchronousTestCase):
    def test_tlsdestinations_ca_file_must_exist(self) -> None:
        root = init_root(self)
        ca = write(root, "etc/ca.pem", "")
        write(root, "control/tlsdestinations", f"a.example:\nb.example:{ca}\nc.example:/no/such/ca.pem\n-d.example\n")
        problems = check(root, check_extra_files)
        self.assertEqual(located(root, problems), [("control/tlsdestinations", 3, ERROR)])
        self.assertIn("/no/such/ca.pem does not exist", problems[0].text)

    def test_queuesync_warning_is_pymta_sends(self) -> None:
        root = init_root(self)
        write(root, "control/queuesync", "sometimes\n")
        problems = check(root, check_extra_files)
        self.assertEqual(located(root, problems), [("control/queuesync", 1, WARNING)])
        self.assertEqual(problems[0].text, "unknown mode 'sometimes'; using fsync")

    def test_read_errors_of_extra_files_name_the_line(self) -> None:
        root = init_root(self)
        write(root, "control/rbls", "zen.example\nbad\0zone\n")
        write(root, "control/concurrencyperip", b"\xff\n")
        problems = check(root, check_extra_files)
        self.assertEqual(sorted(located(root, problems)),
                         [("control/concurrencyperip", 1, ERROR), ("control/rbls", 2, ERROR)])

    def test_good_files(self) -> None:
        root = init_root(self)
        write(root, "control/rbls", "zen.example\n+allow.example\nbl.example:permanent\n")
        write(root, "control/concurrencyperip", "5\n")
        write(root, "control/queuesync", "fsync\n")
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
        self.assertIn("'127.0.0.1'", problems[0].text)

    def test_line_without_a_colon_is_ignored_with_a_warning(self) -> None:
        root = init_root(self)
        write(root, "etc/tcp.smtp", "# rules\n127.0.0.1 deny\n:allow\n")
        self.assertEqual(located(root, check(root, check_tcp_smtp)), [("etc/tcp.smtp", 2, WARNING)])

    def test_pymta_init_rules_and_no_file(self) -> None:
        root = init_root(self)
        self.assertEqual(check(root, check_tcp_smtp), [])
        write(root, "etc/tcp.smtp", "")
        self.assertEqual(check(root, check_tcp_smtp), [])
