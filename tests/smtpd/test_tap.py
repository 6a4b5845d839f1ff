"""twistd pymta-smtpd: options, and real twistd children (pymta-send + pymta-smtpd) taking mail into the queue."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.tap import Options
from tests.waiting import wait_until

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class OptionsTests(SynchronousTestCase):
    def test_parse(self) -> None:
        o = Options()
        o.parseOptions(["--root", "/x", "--listen", "tcp:2525", "-l", "tcp6:2526", "--submission", "ssl:2465"])
        self.assertEqual((o["root"], o["listen"], o["submission"]), ("/x", ["tcp:2525", "tcp6:2526"], ["ssl:2465"]))

    def test_errors(self) -> None:
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", "/x"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--listen", "nonsense:1"])


class MakeServiceErrors(SynchronousTestCase):
    def test_broken_rules_and_missing_certificate_are_clear_errors(self) -> None:
        from pymta.smtpd.tap import makeService
        from tests.smtpd.helpers import make_root

        root = make_root(self.mktemp())
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write("1.2.3.4:perhaps\n")
        o = Options()
        o.parseOptions(["--root", root, "--listen", "tcp:0:interface=127.0.0.1"])
        with self.assertRaises(SystemExit) as cm:
            makeService(o)
        self.assertIn("tcp.smtp:1: unable to parse this line: 1.2.3.4:perhaps", str(cm.exception))
        os.unlink(os.path.join(root, "etc", "tcp.smtp"))
        o = Options()
        o.parseOptions(["--root", root, "--submission", "ssl:0:interface=127.0.0.1"])
        with self.assertRaises(SystemExit) as cm:
            makeService(o)
        self.assertIn("servercert.pem", str(cm.exception))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwistdChildren(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-smtpd-tap-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.root = os.path.join(self.base, "root")
        init = [sys.executable, "-m", "pymta.cli.main", "init", self.root, "--me", "mx.example.test"]
        self.ids: list[str] = []
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            init += ["--mail-uid", f"{nobody.pw_uid}:{nobody.pw_gid}"]
            self.ids = ["-u", str(nobody.pw_uid), "-g", str(nobody.pw_gid)]
        subprocess.run(init, check=True, capture_output=True, cwd=PROJECT)
        with open(os.path.join(self.root, "control", "concurrencylocal"), "w") as f:
            f.write("0\n")
        os.makedirs(os.path.join(self.root, "etc"), exist_ok=True)
        self.rules = os.path.join(self.root, "etc", "tcp.smtp")
        with open(self.rules, "w") as f:
            f.write(":allow\n")
        self.procs: list[subprocess.Popen] = []
        self.addCleanup(self.stop)

    def twistd(self, *args: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile=-", *self.ids, *args],
            cwd=PROJECT,
            stdout=open(os.path.join(self.base, f"log{len(self.procs)}"), "wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def log(self) -> str:
        out = []
        for i in range(len(self.procs)):
            with open(os.path.join(self.base, f"log{i}"), errors="replace") as f:
                out.append(f.read())
        return "\n".join(out)

    def test_mail_into_queue_and_sighup_reload(self) -> None:
        port = free_port()
        self.twistd("pymta-send", "--root", self.root)
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(self.root, "run", "inject.sock"))), self.log())
        smtpd = self.twistd("pymta-smtpd", "--root", self.root, "--listen", f"tcp:{port}:interface=127.0.0.1")

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        self.assertTrue(wait_until(listening), self.log())
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
            code, text = c.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertIn(b"STARTTLS", text)  # pymta init wrote a certificate
            c.mail("a@client.test")
            c.rcpt("postmaster@mx.example.test")  # an existing address: pymta init turns control/rcptcheck on
            code, text = c.data(b"Subject: tap\r\n\r\nthrough twistd\r\n")
        self.assertEqual(code, 250, text)
        self.assertRegex(text.decode(), r"^ok \d+ qp \d+$")
        mess = os.path.join(self.root, "queue", "mess")
        files = [os.path.join(d, f) for d, _, fs in os.walk(mess) for f in fs]
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            stored = f.read()
        self.assertIn(b"Received: from unknown (HELO client.test) (127.0.0.1)\n  by mx.example.test with SMTP;", stored)
        self.assertTrue(stored.endswith(b"Subject: tap\n\nthrough twistd\n"))

        with open(self.rules, "w") as f:
            f.write("127.0.0.1:deny\n:allow\n")
        smtpd.send_signal(signal.SIGHUP)

        def refused() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                return s.recv(100) == b""

        self.assertTrue(wait_until(refused, 20), self.log())
