"""Tests for pymta.cli.sendmail (pymta sendmail / pymta-sendmail)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import sendmail
from pymta.interfaces import QueueRefused
from pymta.queue.layout import QueueLayout
from tests.cli.test_inject import FakeQueue, make_root


class ParseTests(SynchronousTestCase):
    def test_flags_real_programs_pass(self) -> None:
        request = sendmail.parse_sendmail_arguments(
            ["-t", "-i", "-oi", "-odi", "-oem", "-v", "-bm", "-f", "bounce@x.example", "-FJoe", "-N", "never",
             "-R", "hdrs", "-Lx", "-V", "env", "-Eignored", "-J", "--", "-not-a-flag@x.example"]
        )
        self.assertTrue(request.header_recipients)
        self.assertEqual(request.sender, "bounce@x.example")
        self.assertEqual(request.full_name, "Joe")
        self.assertEqual(request.recipients, ["-not-a-flag@x.example"])

    def test_angle_brackets_around_the_sender(self) -> None:
        self.assertEqual(sendmail.parse_sendmail_arguments(["-f", "<b@x.example>"]).sender, "b@x.example")
        self.assertEqual(sendmail.parse_sendmail_arguments(["-f<>"]).sender, "")

    def test_clustered_and_attached(self) -> None:
        request = sendmail.parse_sendmail_arguments(["-tifme@x.example", "rcpt"])
        self.assertTrue(request.header_recipients)
        self.assertEqual(request.sender, "me@x.example")
        self.assertEqual(request.recipients, ["rcpt"])

    def test_r_is_a_sender_synonym_and_modes(self) -> None:
        self.assertEqual(sendmail.parse_sendmail_arguments(["-r", "a@b"]).sender, "a@b")
        self.assertEqual(sendmail.parse_sendmail_arguments(["-bp"]).mode, "p")
        self.assertEqual(sendmail.parse_sendmail_arguments(["-bs"]).mode, "s")

    def test_options_stop_at_first_recipient(self) -> None:
        request = sendmail.parse_sendmail_arguments(["a@b", "-t"])
        self.assertFalse(request.header_recipients)
        self.assertEqual(request.recipients, ["a@b", "-t"])

    def test_root(self) -> None:
        self.assertEqual(sendmail.parse_sendmail_arguments(["--root", "/r", "-t"]).root, "/r")
        self.assertEqual(sendmail.parse_sendmail_arguments(["--root=/s"]).root, "/s")

    def test_sender_environment(self) -> None:
        env = {"NAME": "n", "MAILNAME": "m", "QMAILNAME": "q", "MAILHOST": "h", "QMAILHOST": "qh", "USER": "u"}
        result = sendmail.sender_environment(env, "boss@corp.example", None)
        self.assertEqual(result, {"USER": "u", "QMAILUSER": "boss", "QMAILHOST": "corp.example"})
        self.assertEqual(sendmail.sender_environment({}, "local", "Full Name"),
                         {"QMAILUSER": "local", "MAILNAME": "Full Name"})


class SendmailCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self)
        self.env = {"USER": "www-data", "PYMTA_ROOT": self.root}
        self.err = io.StringIO()

    def call(self, argv: list[str], data: bytes, queue: FakeQueue | None = None, progname: str = "sendmail") -> int:
        return sendmail.main(argv, progname=progname, stdin=io.BytesIO(data), stdout=io.BytesIO(), stderr=self.err,
                             env=self.env, enqueue=queue if queue is not None else FakeQueue())

    def test_php_style_crlf_with_t(self) -> None:
        queue = FakeQueue()
        data = b"To: user@x.example\r\nSubject: from php\r\nX-Mailer: PHP\r\n\r\nline one\r\n.\r\nline two\r\n"
        self.assertEqual(self.call(["-t", "-i"], data, queue), 0)
        [(_, message, sender, recipients)] = queue.calls
        self.assertEqual(recipients, ["user@x.example"])
        self.assertEqual(sender, "www-data@mail.example.com")
        self.assertNotIn(b"\r", message)
        self.assertTrue(message.endswith(b"To: user@x.example\nSubject: from php\nX-Mailer: PHP\n\nline one\n.\nline two\n"))

    def test_without_t_only_arguments(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["arg@x.example"], b"To: hdr@x.example\n\n", queue), 0)
        self.assertEqual(queue.calls[0][3], ["arg@x.example"])

    def test_t_also_uses_arguments(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["-t", "arg@x.example"], b"To: hdr@x.example\n\n", queue), 0)
        self.assertEqual(queue.calls[0][3], ["arg@x.example", "hdr@x.example"])

    def test_no_recipients_is_queued_for_nobody(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call([], b"To: hdr@x.example\n\n", queue), 0)
        self.assertEqual(queue.calls[0][3], [])

    def test_f_sets_sender_and_from(self) -> None:
        queue = FakeQueue()
        self.env["NAME"] = "Stale Name"
        self.assertEqual(self.call(["-f", "bounce@corp.example", "-F", "Web Shop", "a@x.example"], b"\n", queue), 0)
        [(_, message, sender, _)] = queue.calls
        self.assertEqual(sender, "bounce@corp.example")
        self.assertIn(b'\nFrom: "Web Shop" <bounce@corp.example>\n', message)

    def test_null_sender(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["-f", "<>", "a@x.example"], b"\n", queue), 0)
        self.assertEqual(queue.calls[0][2], "")

    def test_f_without_name(self) -> None:
        queue = FakeQueue()
        self.env["NAME"] = "Stale Name"
        self.assertEqual(self.call(["-fbounce@corp.example", "a@x.example"], b"\n", queue), 0)
        self.assertIn(b"\nFrom: bounce@corp.example\n", queue.calls[0][1])

    def test_usage_64(self) -> None:
        self.assertEqual(self.call(["-Z"], b""), 64)
        self.assertEqual(self.err.getvalue(),
                         "sendmail: unknown option -Z\nsendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] "
                         "[ -bp ] [ -bs ] [ arg ... ]\n")
        self.assertEqual(self.call(["-bd"], b""), 64)
        self.assertEqual(self.call(["-f"], b""), 64)

    def test_exit_codes(self) -> None:
        self.assertEqual(self.call(["a@(b"], b"\n"), 65)
        self.assertIn("sendmail: fatal: unable to parse address: a@(b", self.err.getvalue())
        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueRefused("no (#5.3.0)", True))), 69)
        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueRefused("later (#4.3.0)", False))), 75)
        self.assertIn("sendmail: fatal: later (#4.3.0)\n", self.err.getvalue())
        from pymta.queue.errors import QueueFailure

        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueFailure(53, "disk full"))), 73)
        self.assertIn("qq write error or disk full (#4.3.0) [disk full]", self.err.getvalue())
        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueFailure(54))), 74)
        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueFailure(56))), 75)
        self.assertEqual(self.call(["a@x.example"], b"\n", FakeQueue(QueueFailure(31))), 69)
        with open(os.path.join(self.root, "control", "concurrencylocal"), "w") as f:
            f.write("x\n")
        self.assertEqual(self.call(["a@x.example"], b"\n"), 78)

    def test_newaliases(self) -> None:
        self.assertEqual(self.call([], b"", progname="/usr/bin/newaliases"), 69)
        self.assertIn("newaliases: fatal: please use fastforward/newaliases instead", self.err.getvalue())
        self.assertEqual(self.call(["-bi"], b""), 69)

    def test_progname_in_messages(self) -> None:
        self.assertEqual(self.call(["-Z"], b"", progname="/usr/sbin/pymta-sendmail"), 64)
        self.assertTrue(self.err.getvalue().startswith("pymta-sendmail: unknown option -Z\n"))


class QueueListingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self)
        QueueLayout(os.path.join(self.root, "queue")).create()

    def listing(self, argv: list[str], progname: str) -> tuple[int, str]:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        status = sendmail.main(argv, progname=progname, stdin=io.BytesIO(b""), stderr=io.StringIO(),
                               env={"PYMTA_ROOT": self.root})
        return status, out.getvalue()

    def test_bp_and_mailq_list_the_queue(self) -> None:
        from pymta.cli import qread

        status = sendmail.main(["-f", "s@x.example", "r@y.example"], stdin=io.BytesIO(b"Subject: q\n\nx\n"),
                               stderr=io.StringIO(), env={"PYMTA_ROOT": self.root, "USER": "u"})
        self.assertEqual(status, 0)
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(qread.main(["--root", self.root]), 0)
        expected = out.getvalue()
        for argv, progname in ((["-bp"], "sendmail"), ([], "mailq"), (["--root", self.root, "-bp"], "x")):
            self.assertEqual(self.listing(argv, progname), (0, expected))

    def test_bp_on_a_missing_queue_fails(self) -> None:
        status, output = self.listing(["--root", os.path.join(self.root, "nope"), "-bp"], "sendmail")
        self.assertEqual(status, 111)
        self.assertIn("fatal: unable to read", output)


class ScriptTests(SynchronousTestCase):
    def test_pymta_sendmail_script_queues(self) -> None:
        root = make_root(self)
        layout = QueueLayout(os.path.join(root, "queue"))
        layout.create()
        script = os.path.join(os.path.dirname(sys.executable), "pymta-sendmail")
        if not os.path.exists(script):
            raise self.skipTest("pymta-sendmail script not installed in this environment")
        result = subprocess.run(
            [script, "-t", "-oi"], input=b"To: someone@x.example\r\nSubject: s\r\n\r\nhi\r\n",
            capture_output=True, timeout=60, env={**os.environ, "PYMTA_ROOT": root, "USER": "w"},
        )
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        [name] = os.listdir(layout.dir("todo"))
        with open(layout.mess(int(name)), "rb") as f:
            self.assertTrue(f.read().endswith(b"To: someone@x.example\nSubject: s\n\nhi\n"))


class SMTPSessionTests(SynchronousTestCase):
    """sendmail -bs: an SMTP session on stdin/stdout in a child process."""

    def run_session(self, root: str, session: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "sendmail", "--root", root, "-bs"],
            input=session, capture_output=True, timeout=60,
        )

    def test_piped_session_queues_and_relays(self) -> None:
        root = make_root(self)
        layout = QueueLayout(os.path.join(root, "queue"))
        layout.create()
        with open(os.path.join(root, "control", "rcpthosts"), "w") as f:
            f.write("mail.example.com\n")
        result = self.run_session(root, (
            b"HELO client\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@elsewhere.example>\r\nDATA\r\n"
            b"Subject: bs\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n"))
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.decode().split("\r\n")
        self.assertEqual(lines[0], "220 mail.example.com ESMTP")
        self.assertEqual(lines[3], "250 ok")  # relaying to a foreign domain is allowed
        self.assertEqual(lines[4], "354 go ahead")
        self.assertTrue(lines[5].startswith("250 ok "), lines)
        self.assertEqual(lines[6], "221 mail.example.com")
        [name] = os.listdir(layout.dir("todo"))
        with open(layout.mess(int(name)), "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"Subject: bs\n\nhello\n.dot\n"))
        self.assertIn(b"\nReceived: from localhost (HELO client)", data)

    def test_malformed_concurrencyperip_is_a_temporary_failure_naming_file_and_line(self) -> None:
        # the session asks for the per-address limit as it starts: a bad value must not crash it half-way
        root = make_root(self)
        QueueLayout(os.path.join(root, "queue")).create()
        path = os.path.join(root, "control", "concurrencyperip")
        with open(path, "w") as f:
            f.write("many\n")
        result = self.run_session(root, b"QUIT\r\n")
        self.assertEqual((result.returncode, result.stdout), (75, b""))
        self.assertEqual(result.stderr.decode(), "sendmail: fatal: unable to run an SMTP session: unable to read controls: "
                         f"{path}:1: expected a number of sessions, at least 1, found 'many'\n")

    def test_no_queue_is_a_temporary_failure(self) -> None:
        root = make_root(self)
        result = self.run_session(root, b"QUIT\r\n")
        self.assertEqual(result.returncode, 75)
        self.assertEqual(result.stdout, b"")
        self.assertIn(b"sendmail: fatal: unable to run an SMTP session: no queue manager on", result.stderr)
