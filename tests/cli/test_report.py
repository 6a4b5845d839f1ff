"""
Tests for C{pymta report} on the log of a real pymta-send: two runs of
C{twistd pymta-send} (so delivery numbers start again at 1), messages with
successes, a failure to an unknown local user, a deferral to a route where
nobody listens and a bounce; then every table's numbers are checked.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from twisted.trial import unittest

from pymta.cli import report as report_command
from tests.waiting import wait_until

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
NOSUCH = "Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"  # qmail's final / (issue 17)
NO_CONNECTION = "Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/"


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table(text: str, title: str) -> dict[str, list[str]]:
    """The rows of one table of the report's text, by their last column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"(z{title})" in line)
    blank = lines.index("", start)
    rows: dict[str, list[str]] = {}
    for line in lines[blank + 2:]:
        if not line.strip():
            break
        rows[line.split()[-1]] = line.split()[:-1]
    return rows


class RealLogTests(unittest.TestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-report-")  # short: UNIX socket paths are limited
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = os.path.join(base, "root")
        self.log = os.path.join(base, "send.log")
        init = [self.root, "--me", "mail.example.org", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        self.pymta("init", *init)
        with open(os.path.join(self.root, "control", "smtproutes"), "w") as f:
            f.write(f"elsewhere.example:[127.0.0.1]:{unused_port()}\n")  # nobody listens there

    def pymta(self, *args: str, stdin: bytes = b"") -> str:
        done = subprocess.run([os.path.join(BIN, "pymta"), *args], input=stdin, capture_output=True, cwd=SRC,
                              timeout=60)
        self.assertEqual(done.returncode, 0, f"pymta {args}: {done.stderr!r}")
        return done.stdout.decode()

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def run_send(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", f"--logfile={self.log}", "pymta-send", "--root", self.root],
            cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        self.addCleanup(stop)
        ctl = os.path.join(self.root, "run", "ctl.sock")
        self.assertTrue(wait_until(lambda: os.path.exists(ctl) or proc.poll() is not None, 60), "pymta-send started")
        self.assertIsNone(proc.poll(), self.logged())
        return proc

    def stop_send(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        self.assertIn(proc.wait(60), (0, -15))  # twistd ends a clean stop on SIGTERM by the signal itself
        self.assertTrue(self.logged().endswith("Server Shut Down.\n"))

    def inject(self, sender: str, *recipients: str) -> None:
        self.pymta("inject", "--root", self.root, "-f", sender, *recipients,
                   stdin=f"Subject: from {sender}\n\nhello\n".encode())

    def wait_log(self, pattern: str, count: int) -> None:
        self.assertTrue(wait_until(lambda: len(re.findall(pattern, self.logged())) >= count, 60),
                        f"{count} of {pattern!r} in:\n{self.logged()}")

    def test_every_table_of_two_runs(self) -> None:
        first = self.run_send()
        self.inject("alice@mail.example.org", "alice", "alice-nosuch", "dave@elsewhere.example")  # A
        self.wait_log(r"delivery \d+: (success|failure|deferral)", 3)
        self.inject("bob@else.example", "alice")  # B
        self.inject("alice@mail.example.org", "alice-nosuch")  # C, whose bounce (E) goes back to alice
        self.wait_log(r"end msg", 3)
        self.wait_log(r"delivery \d+: (success|failure|deferral)", 6)
        self.stop_send(first)
        # the second run starts on a later second than anything of the first (the stamps have whole seconds)
        last = re.findall(r"^(\S+) ", self.logged(), re.M)[-1]
        since = datetime.fromisoformat(last).timestamp() + 1
        self.assertTrue(wait_until(lambda: time.time() >= since, 5))
        second = self.run_send()
        self.inject("carol@else.example", "alice")  # D
        self.wait_log(r"end msg", 4)
        self.stop_send(second)

        text = self.logged()
        # the log really restarts its delivery numbers, and has garbage (other components' lines) in it
        self.assertEqual(len(re.findall(r"starting delivery 1: ", text)), 2)
        self.assertEqual(text.count("status: exiting"), 2)
        sizes = {sender: int(size) for size, sender in re.findall(r"info msg \d+: bytes (\d+) from <([^>]*)>", text)
                 if sender != "alice@mail.example.org"}
        a_size, c_size = (int(s) for s in re.findall(r"bytes (\d+) from <alice@mail.example.org>", text))
        b, d, e = sizes["bob@else.example"], sizes["carol@else.example"], sizes[""]

        out = self.pymta("report", self.log)
        overall = dict(line.rsplit(": ", 1) for line in out.split("(zfailures)")[0].splitlines() if ": " in line)
        self.assertEqual({k: overall[k] for k in (
            "Completed messages", "Recipients for completed messages",
            "Total delivery attempts for completed messages", "Bytes in completed messages",
            "Bytes weighted by success", "Total delivery attempts", "  success", "  failure", "  deferral")},
            {"Completed messages": "4", "Recipients for completed messages": "4",
             "Total delivery attempts for completed messages": "4",
             "Bytes in completed messages": str(b + c_size + e + d),
             "Bytes weighted by success": str(b + e + d),  # C's one recipient failed
             "Total delivery attempts": "7", "  success": "4", "  failure": "2", "  deferral": "1"})
        self.assertIn("Bounces queued: 1\n", out)
        self.assertIn("  delivery results without their start: 0\n", out)
        self.assertIn("  deliveries started without a result: 0\n", out)
        self.assertIn("  messages still in the queue at the end: 1\n", out)  # A waits for dave

        self.assertEqual({k: v[0] for k, v in table(out, "failures").items()}, {NOSUCH: "2"})
        self.assertEqual({k: v[0] for k, v in table(out, "deferrals").items()}, {NO_CONNECTION: "1"})
        recipients = table(out, "recipients")
        self.assertEqual({k: v[:3] for k, v in recipients.items()}, {
            # sbytes mess tries
            "local.alice@mail.example.org": [str(a_size + b + e + d), "4", "4"],
            "local.alice-nosuch@mail.example.org": ["0", "0", "2"],
            "remote.dave@elsewhere.example": ["0", "0", "1"],
        })
        senders = table(out, "senders")
        self.assertEqual({k: v[:6] for k, v in senders.items()}, {
            # mess bytes sbytes rbytes recips tries
            "<alice@mail.example.org>": ["1", str(c_size), str(a_size), str(c_size), "1", "4"],
            "<bob@else.example>": ["1", str(b), str(b), str(b), "1", "1"],
            "<carol@else.example>": ["1", str(d), str(d), str(d), "1", "1"],
            "<>": ["1", str(e), str(e), str(e), "1", "1"],
        })
        # the delays agree across tables: every attempt's xdelay is in its recipient's row and its sender's
        total_xdelay = float(overall["Total xdelay (s)"])
        self.assertAlmostEqual(sum(float(v[3]) for v in recipients.values()), total_xdelay)
        self.assertAlmostEqual(sum(float(v[6]) for v in senders.values()), total_xdelay)
        self.assertLessEqual(float(overall["Maximum xdelay (s)"]), 60)
        ddist = out.split("(zddist)")[1].splitlines()[-1].split()
        self.assertEqual(ddist[2:], ["4", "100.00"])

        # --since the second run: only D; the same log from standard input
        out = self.pymta("report", "--since", f"@{since}", "--table", "zoverall", "-", stdin=text.encode())
        self.assertIn("Completed messages: 1\n", out)
        self.assertIn("Total delivery attempts: 1\n", out)
        self.assertNotIn("(zfailures)", out)


class CommandTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)

    def test_usage_errors(self) -> None:
        for argv in (["--since", "soon"], ["--table", "zsomething"], ["--top", "0"], ["-", "some.log"]):
            with self.assertRaises(SystemExit) as caught:
                report_command.main(argv)
            self.assertEqual(caught.exception.code, 2, argv)
        self.assertIn("is not a time", self.err.getvalue())
        self.assertIn("no table 'zsomething'", self.err.getvalue())

    def test_unreadable_file(self) -> None:
        missing = os.path.abspath(self.mktemp())
        self.assertEqual(report_command.main([missing]), 111)
        self.assertEqual(self.err.getvalue(), f"pymta report: fatal: unable to read {missing}: No such file or directory\n")
        self.assertEqual(self.out.getvalue(), "")

    def test_tables_chosen(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("2026-05-01T10:00:00+0000 [pymta.send#info] starting delivery 1: msg 5 to local a@b\n"
                    "2026-05-01T10:00:01+0000 [pymta.send#info] delivery 1: failure: nope\n")
        self.assertEqual(report_command.main(["--table", "failures", "--table", "zdeferrals", path]), 0)
        text = self.out.getvalue()
        self.assertEqual(re.findall(r"\(z(\w+)\)", text), ["failures", "deferrals"])
        self.assertIn("  1    1.00  nope\n", text)
