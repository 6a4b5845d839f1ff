"""Tests for pymta.local.deliver: qmail-local's semantics, in process."""

from __future__ import annotations

import os
import stat
import sys

from twisted.trial import unittest

from pymta.local.deliver import LOOP_TEXT, NO_MAILBOX_TEXT, LocalDelivery, deliver_local
from pymta.local.program import QMAILQUEUE_PROGRAM, base_environment
from pymta.qmailhelpers import BIN_DIR
from tests.local.helpers import MESSAGE, make_home, make_maildir, maildir_files, open_message, user, write_file


class DeliverTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.home = make_home(os.path.join(self.base, "home"))
        self.fd = open_message(os.path.join(self.base, "mess"))
        self.addCleanup(os.close, self.fd)

    def dotqmail(self, name: str, text: str, mode: int = 0o644) -> str:
        return write_file(os.path.join(self.home, name), text, mode)

    def deliver(self, dash: str = "", ext: str = "", *, local: str | None = None, sender: str = "alice@example.com",
                defaultdelivery: str = "./Maildir/\n", domain: str = "example.org"):
        if local is None:
            local = "joe" + dash + ext
        request = LocalDelivery(sender, local, domain, user(self.home, dash, ext), defaultdelivery)
        return deliver_local(request, self.fd, lock_timeout=0.3, now=1795556971.0)


class DefaultDeliveryTests(DeliverTestCase):
    def test_no_dotqmail_uses_defaultdelivery(self) -> None:
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.report_text()), ("K", "did 1+0+0\n"))
        [data] = maildir_files(os.path.join(self.home, "Maildir"))
        self.assertEqual(
            data,
            b"Return-Path: <alice@example.com>\nDelivered-To: joe@example.org\n" + MESSAGE,
        )

    def test_empty_dotqmail_uses_defaultdelivery(self) -> None:
        self.dotqmail(".qmail", "")
        outcome = self.deliver(defaultdelivery="./Mailbox\n")
        self.assertEqual(outcome.status, "K")
        self.assertTrue(os.path.exists(os.path.join(self.home, "Mailbox")))

    def test_comment_only_discards(self) -> None:
        self.dotqmail(".qmail", "# nothing here\n")
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.report_text()), ("K", "did 0+0+0\n"))
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])

    def test_extension_without_file_bounces(self) -> None:
        outcome = self.deliver("-", "nothing")
        self.assertEqual((outcome.status, outcome.output), ("D", NO_MAILBOX_TEXT + "\n"))

    def test_first_line_blank(self) -> None:
        self.dotqmail(".qmail", "\n./Maildir/\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("first line of .qmail file is blank", outcome.output)

    def test_later_blank_lines_ignored(self) -> None:
        self.dotqmail(".qmail", "./Maildir/\n\n\n./Mailbox  \t\n")
        outcome = self.deliver()
        self.assertEqual(outcome.report_text(), "did 2+0+0\n")


class LookupTests(DeliverTestCase):
    def test_order_and_default(self) -> None:
        self.dotqmail(".qmail-a-default", "|echo a-default $DEFAULT\n")
        self.dotqmail(".qmail-default", "|echo default $DEFAULT\n")
        self.assertEqual(self.deliver("-", "a-B-c").output, "a-default B-c\n")
        self.assertEqual(self.deliver("-", "x-Y").output, "default x-Y\n")
        self.dotqmail(".qmail-a-b-c", "|echo exact ${DEFAULT-unset}\n")
        self.assertEqual(self.deliver("-", "A-b-C").output, "exact unset\n")

    def test_dots_become_colons(self) -> None:
        self.dotqmail(".qmail-john:doe", "|echo $EXT\n")
        self.assertEqual(self.deliver("-", "John.Doe").output, "John.Doe\n")

    def test_slash_in_extension_never_opens_outside(self) -> None:
        os.makedirs(os.path.join(self.home, ".qmail-::"))
        outside = os.path.join(self.home, "x")
        self.dotqmail("x", "|echo escaped\n")
        self.assertTrue(os.path.exists(outside))
        outcome = self.deliver("-", "../x")
        self.assertEqual((outcome.status, outcome.output), ("D", NO_MAILBOX_TEXT + "\n"))
        self.dotqmail(".qmail-default", "|echo default:$DEFAULT\n")
        self.assertEqual(self.deliver("-", "../x").output, "default:../x\n")

    def test_writable_dotqmail_refused(self) -> None:
        for mode in (0o664, 0o646):
            path = self.dotqmail(".qmail", "./Maildir/\n", mode)
            os.chmod(path, mode)
            outcome = self.deliver()
            self.assertEqual((outcome.status, outcome.output), ("Z", "Uh-oh: .qmail file is writable. (#4.7.0)\n"))

    def test_writable_home_refused(self) -> None:
        for mode in (0o770, 0o707):
            os.chmod(self.home, mode)
            outcome = self.deliver()
            self.assertEqual((outcome.status, outcome.output), ("Z", "Uh-oh: home directory is writable. (#4.7.0)\n"))

    def test_sticky_home_defers(self) -> None:
        os.chmod(self.home, 0o700 | stat.S_ISVTX)
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("Home directory is sticky", outcome.output)

    def test_missing_home(self) -> None:
        self.home = os.path.join(self.base, "missing")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn(f"Unable to switch to {self.home}", outcome.output)

    def test_nul_and_long_line(self) -> None:
        self.dotqmail(".qmail", "./Maildir/\n\0\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("NUL", outcome.output)
        self.dotqmail(".qmail", "|" + "x" * 9000 + "\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("line 1 of .qmail is longer than 8192 bytes", outcome.output)
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])


class LineTypeTests(DeliverTestCase):
    def test_every_line_type(self) -> None:
        make_maildir(os.path.join(self.home, "Other"))
        self.dotqmail(
            ".qmail-all",
            "# comment\n"
            "./Maildir/\n"
            f"{self.home}/Other/\n"
            "./mbox\n"
            "|cat > prog.out\n"
            "&fwd@example.net\n"
            "bare@example.net\n"
            "+ignored\n",
        )
        outcome = self.deliver("-", "all")
        self.assertEqual(outcome.status, "K")
        self.assertEqual(outcome.did, (3, 2, 1))
        self.assertEqual(outcome.forwards, ["fwd@example.net", "bare@example.net"])
        self.assertEqual(len(maildir_files(os.path.join(self.home, "Other"))), 1)
        with open(os.path.join(self.home, "prog.out"), "rb") as f:
            self.assertEqual(f.read(), MESSAGE)

    def test_duplicate_mailbox_lines_deliver_once(self) -> None:
        self.dotqmail(".qmail", "./Maildir/\n./Maildir/\n./x/../Maildir/\n./mbox\n./mbox\n")
        outcome = self.deliver()
        self.assertEqual(outcome.did, (2, 0, 0))
        self.assertEqual(len(maildir_files(os.path.join(self.home, "Maildir"))), 1)
        with open(os.path.join(self.home, "mbox"), "rb") as f:
            self.assertEqual(f.read().count(b"From alice@example.com "), 1)

    def test_mbox_format(self) -> None:
        self.dotqmail(".qmail", "./mbox\n")
        self.deliver()
        with open(os.path.join(self.home, "mbox"), "rb") as f:
            data = f.read()
        self.assertEqual(
            data,
            b"From alice@example.com Tue Nov 24 21:49:31 2026\n"
            b"Return-Path: <alice@example.com>\nDelivered-To: joe@example.org\n"
            b"Subject: test\nTo: joe@example.org\n\nFirst line\n>From the start\n>>From quoted\nlast line\n\n",
        )

    def test_forward_only_x_bit(self) -> None:
        self.dotqmail(".qmail", "a@example.net\n./Maildir/\n", 0o744)
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.output), ("Z", "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"))
        self.dotqmail(".qmail", "a@example.net\n|true\n", 0o744)
        self.assertIn("prog delivery but has x bit set", self.deliver().output)
        self.dotqmail(".qmail", "a@example.net\n", 0o744)
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.forwards), ("K", ["a@example.net"]))

    def test_plus_list_is_forward_only(self) -> None:
        self.dotqmail(".qmail", "./mbox\n+list\n./Maildir/\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("file delivery but has x bit set", outcome.output)

    def test_forward_address_with_shell_metacharacters_is_literal(self) -> None:
        self.dotqmail(".qmail", "&`touch pwned`;$(id)|x@example.net\n")
        outcome = self.deliver()
        self.assertEqual(outcome.forwards, ["`touch pwned`;$(id)|x@example.net"])
        self.assertFalse(os.path.exists(os.path.join(self.home, "pwned")))

    def test_forward_address_control_character(self) -> None:
        self.dotqmail(".qmail", "&a\rb@example.net\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("control character", outcome.output)

    def test_maildir_without_tmp(self) -> None:
        os.makedirs(os.path.join(self.home, "Broken", "new"))
        self.dotqmail(".qmail", "./Broken/\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertIn("Temporary error on maildir delivery: cannot create tmp/", outcome.output)
        self.assertIn("is this a Maildir?", outcome.output)

    def test_mbox_unopenable(self) -> None:
        self.dotqmail(".qmail", "./nodir/mbox\n")
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.output), ("Z", "Unable to open ./nodir/mbox: No such file or directory. (#4.2.1)\n"))

    def test_failure_stops_processing_and_drops_forwards(self) -> None:
        self.dotqmail(".qmail", "x@example.net\n|echo before\n|exit 111\n./Maildir/\n")
        outcome = self.deliver()
        self.assertEqual(outcome.status, "Z")
        self.assertEqual(outcome.forwards, [])
        self.assertEqual(outcome.output, "before\nProgram exited with status 111. (#4.0.0)\n")
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])


class ProgramTests(DeliverTestCase):
    def run_program(self, command: str):
        self.dotqmail(".qmail", f"|{command}\n./Maildir/\n")
        return self.deliver()

    def test_exit_codes(self) -> None:
        for code in (64, 65, 70, 76, 77, 78, 100, 112):
            outcome = self.run_program(f"echo no; exit {code}")
            self.assertEqual((outcome.status, outcome.output), ("D", "no\n"), code)
        for code in (1, 2, 71, 75, 111, 127):
            self.assertEqual(self.run_program(f"exit {code}").status, "Z", code)
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])

    def test_exit_99_stops_but_keeps_earlier_forwards(self) -> None:
        self.dotqmail(".qmail", "a@example.net\n|exit 99\n./Maildir/\nb@example.net\n")
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.did, outcome.forwards), ("K", (0, 1, 1), ["a@example.net"]))
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])

    def test_exit_0_continues(self) -> None:
        outcome = self.run_program("echo fine")
        self.assertEqual(outcome.report_text(), "fine\ndid 1+0+1\n")

    def test_killed_program(self) -> None:
        outcome = self.run_program("kill -9 $$")
        self.assertEqual((outcome.status, outcome.output), ("Z", "Aack, child crashed. (#4.3.0)\n"))

    def test_missing_program(self) -> None:
        outcome = self.run_program("/nonexistent/program-xyz")
        self.assertEqual(outcome.status, "Z")
        self.assertIn("/nonexistent/program-xyz", outcome.output)

    def test_program_runs_in_home_with_message_on_stdin(self) -> None:
        outcome = self.run_program("pwd; wc -c")
        self.assertEqual(outcome.output.split(), [self.home, str(len(MESSAGE))])

    def test_output_capped(self) -> None:
        outcome = self.run_program("yes | head -c 100000")
        self.assertEqual(outcome.status, "K")
        self.assertLessEqual(len(outcome.output), 4001)

    def test_environment(self) -> None:
        self.dotqmail(".qmail-prog-default", "|env\n")
        request_local = "joe-Prog-Foo.Bar-baz"
        outcome = self.deliver("-", "Prog-Foo.Bar-baz", local=request_local, domain="mail.test.example")
        env = dict(line.split("=", 1) for line in outcome.output.splitlines() if "=" in line)
        expected = {
            "SENDER": "alice@example.com",
            "NEWSENDER": "alice@example.com",
            "RECIPIENT": "joe-Prog-Foo.Bar-baz@mail.test.example",
            "USER": "joe",
            "HOME": self.home,
            "HOST": "mail.test.example",
            "HOST2": "mail.test",
            "HOST3": "mail",
            "HOST4": "mail",
            "LOCAL": "joe-Prog-Foo.Bar-baz",
            "EXT": "Prog-Foo.Bar-baz",
            "EXT2": "Foo.Bar-baz",
            "EXT3": "baz",
            "EXT4": "",
            "DEFAULT": "Foo.Bar-baz",
            "DTLINE": "Delivered-To: joe-Prog-Foo.Bar-baz@mail.test.example",
            "RPLINE": "Return-Path: <alice@example.com>",
            "UFLINE": "From alice@example.com Tue Nov 24 21:49:31 2026",
        }
        for name, value in expected.items():
            self.assertEqual(env.get(name), value, name)
        self.assertIn("PATH", env)

    def test_helpers_first_on_path(self) -> None:
        # the .qmail helper programs are found by their bare names, on the interpreter pymta runs on
        self.dotqmail(".qmail-x", '|echo "$PATH"; echo "$PYMTA_PYTHON"; command -v preline\n')
        path, python, found = self.deliver("-", "x").output.splitlines()
        self.assertEqual(path.split(":")[0], BIN_DIR)
        self.assertEqual(python, sys.executable)
        self.assertEqual(found, os.path.join(BIN_DIR, "preline"))

    def test_preline(self) -> None:
        self.dotqmail(".qmail-x", "|preline cat\n")
        output = self.deliver("-", "x", sender="").output
        self.assertRegex(output, r"^From MAILER-DAEMON [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d [\d:]{8} \d{4}\n"
                                 r"Return-Path: <>\nDelivered-To: joe-x@example.org\nSubject: test\n")

    def test_pymta_root_passed_on(self) -> None:
        self.patch(os, "environ", dict(os.environ, PYMTA_ROOT="/srv/pymta-root"))
        self.dotqmail(".qmail-x", '|echo "$PYMTA_ROOT"\n')
        self.assertEqual(self.deliver("-", "x").output, "/srv/pymta-root\n")
        self.assertEqual(base_environment({"PATH": "/bin"}), {"PATH": f"{BIN_DIR}:/bin", "PYMTA_PYTHON": sys.executable,
                                                             "QMAILQUEUE": QMAILQUEUE_PROGRAM})
        self.assertEqual(base_environment({"PATH": f"/bin:{BIN_DIR}"})["PATH"], f"/bin:{BIN_DIR}")

    def test_qmailqueue_names_pymtas_qmail_queue(self) -> None:
        # qmail's add-ons (dot-forward, fastforward) queue through $QMAILQUEUE: pymta's qmail-queue
        self.dotqmail(".qmail-x", '|echo "$QMAILQUEUE"\n')
        self.assertEqual(self.deliver("-", "x").output, QMAILQUEUE_PROGRAM + "\n")
        self.assertEqual(QMAILQUEUE_PROGRAM, os.path.join(BIN_DIR, "qmail-queue"))
        self.assertTrue(os.access(QMAILQUEUE_PROGRAM, os.X_OK))

    def test_qmailqueue_of_the_administrator_kept(self) -> None:
        # a QMAILQUEUE the daemons were started with (a filter in front of the queue) stays
        self.patch(os, "environ", dict(os.environ, QMAILQUEUE="/usr/local/bin/qmail-scanner-queue"))
        self.dotqmail(".qmail-x", '|echo "$QMAILQUEUE"\n')
        self.assertEqual(self.deliver("-", "x").output, "/usr/local/bin/qmail-scanner-queue\n")

    def test_default_unset_for_exact_file(self) -> None:
        self.dotqmail(".qmail-x", '|echo "${DEFAULT-unset}"\n')
        self.assertEqual(self.deliver("-", "x").output, "unset\n")


class NewsenderTests(DeliverTestCase):
    def newsender(self, sender: str = "alice@example.com") -> str:
        self.dotqmail(".qmail-list", "|echo $NEWSENDER\n")
        return self.deliver("-", "list", sender=sender).output.strip()

    def test_plain(self) -> None:
        self.assertEqual(self.newsender(), "alice@example.com")

    def test_owner(self) -> None:
        self.dotqmail(".qmail-list-owner", "joe\n")
        self.assertEqual(self.newsender(), "joe-list-owner@example.org")
        self.assertEqual(self.newsender(""), "")
        self.assertEqual(self.newsender("#@[]"), "#@[]")

    def test_owner_verp(self) -> None:
        self.dotqmail(".qmail-list-owner", "joe\n")
        self.dotqmail(".qmail-list-owner-default", "joe\n")
        self.assertEqual(self.newsender(), "joe-list-owner-@example.org-@[]")


class LoopTests(DeliverTestCase):
    def test_loop_detected(self) -> None:
        os.close(self.fd)
        self.fd = open_message(os.path.join(self.base, "mess2"), b"Delivered-To: joe@example.org\n" + MESSAGE)
        outcome = self.deliver()
        self.assertEqual((outcome.status, outcome.output), ("D", LOOP_TEXT + "\n"))
        self.assertEqual(maildir_files(os.path.join(self.home, "Maildir")), [])

    def test_other_delivered_to_and_body_lines_are_not_loops(self) -> None:
        os.close(self.fd)
        self.fd = open_message(
            os.path.join(self.base, "mess2"),
            b"Delivered-To: other@example.org\nSubject: x\n\nDelivered-To: joe@example.org\n",
        )
        self.assertEqual(self.deliver().status, "K")
