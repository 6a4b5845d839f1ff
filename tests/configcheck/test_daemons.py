"""
Real twistd children: every misconfiguration of issue 13 items 6-9 stops a
daemon with one line naming file and line (no traceback); every plugin and
.tac file does the same; warnings are logged at start; C{pymta ctl reload}
reports a certificate that does not load, exits non-zero and keeps the old
one in force.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.certs import self_signed_pem
from tests.configcheck.helpers import init_root, write

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAP_CONFIGS = os.path.join(PROJECT, "pymta", "deploy", "tac")
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
LOOPBACK = "tcp:0:interface=127.0.0.1"
WAIT = 60.0


#: the log file of each child, by pid
LOGS: dict[int, str] = {}


def twistd(root: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    log = os.path.join(os.path.dirname(root), f"twistd-{time.monotonic_ns()}.log")
    proc = subprocess.Popen(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", f"--logfile={log}", *args],
        cwd=PROJECT, env=dict(os.environ, PYTHONPATH=PROJECT, **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    LOGS[proc.pid] = log
    return proc


def finished(proc: subprocess.Popen) -> tuple[int, str]:
    """Exit status and everything the child wrote (stdout, stderr and its log file)."""
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    log = LOGS.pop(proc.pid, "")
    text = ""
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            text = f.read()
    return proc.returncode, (out + err).decode(errors="replace") + text


class RefusalTests(SynchronousTestCase):
    def assertOneLine(self, proc: subprocess.Popen, *expected: str) -> None:
        code, output = finished(proc)
        self.assertNotEqual(code, 0, output)
        self.assertNotIn("Traceback", output)
        lines = output.strip().splitlines()
        self.assertEqual(len(lines), 1, output)
        for text in expected:
            self.assertIn(text, lines[0])

    def test_each_misconfiguration_stops_pymta_smtpd(self) -> None:
        cases: list[tuple[str, str, str, str]] = [  # file, content, FILE:LINE expected, text expected
            ("control/smtproutes", "a.example:relay.example:notaport\n", "control/smtproutes:1:", "notaport"),
            ("control/smtproutes", "# x\na.example:relay.example:99999\n", "control/smtproutes:2:", "99999"),
            ("control/smtproutes", "a.example:[256.1.1.1]\n", "control/smtproutes:1:", "[256.1.1.1]"),
            ("control/smtproutes", "a.example:[127.0.0.1:25]\n", "control/smtproutes:1:", "[127.0.0.1:25]"),
            ("control/smtproutes", "a.example:relay.example:25:x\n", "control/smtproutes:1:", "extra field after the port"),
            ("control/smtproute", "a.example:relay.example\n", "control/smtproute:", "did you mean smtproutes?"),
            ("control/rcpthosts", "mx.example.test\n other.example\n", "control/rcpthosts:2:",
             "blank at the start of ' other.example'"),
            ("etc/tcp.smtp", "127.0.0.1 :deny\n:allow\n", "etc/tcp.smtp:1:", "blank in the address '127.0.0.1 '"),
            ("etc/tcp.smtp", ":allow\n127.0.0.1 deny\n", "etc/tcp.smtp:2:", "no colon"),
            ("control/queuesync", "sometimes\n", "control/queuesync:1:", "unknown mode 'sometimes'"),
            ("control/tlsdestinations", "a.example:/no/such/ca.pem\n", "control/tlsdestinations:1:",
             "unable to read the CA file /no/such/ca.pem"),
            ("etc/tcp.smtp", ":allow\n1.2.3.4:perhaps\n", "etc/tcp.smtp:2:", "unable to parse"),
            ("control/servercert.pem", "no key here\n", "control/servercert.pem:", "no private key"),
            ("control/databytes", "lots\n", "control/databytes:1:", "expected a non-negative decimal number"),
        ]
        started = []
        for relpath, content, where, text in cases:
            root = init_root(self)
            write(root, relpath, content, 0o600)
            started.append((twistd(root, "pymta-smtpd", "--root", root, "--listen", LOOPBACK), root, where, text))
        for proc, root, where, text in started:
            with self.subTest(where=where, text=text):
                self.assertOneLine(proc, f"pymta-smtpd: configuration error, not starting: {root}/{where}", text)

    def test_every_plugin_and_tac_file(self) -> None:
        """Issue 13 item 9: a bad file every daemon reads (a control file) is one line under each of them."""
        root = init_root(self)
        write(root, "control/databytes", "lots\n")
        where = f"{root}/control/databytes:1: "
        env = {"PYMTA_ROOT": root, "PYMTA_SMTP": LOOPBACK, "PYMTA_SUBMISSION": LOOPBACK, "PYMTA_POP3": LOOPBACK}
        runs = [
            ("pymta", twistd(root, "pymta", "--root", root, "--smtp", LOOPBACK, "--pop3", LOOPBACK)),
            ("pymta-send", twistd(root, "pymta-send", "--root", root)),
            ("pymta-pop3d", twistd(root, "pymta-pop3d", "--root", root, "--listen", LOOPBACK)),
        ]
        for tac in ("pymta", "smtpd", "send", "pop3d"):
            program = "pymta" if tac == "pymta" else f"pymta-{tac}"
            runs.append((program, twistd(root, "-y", os.path.join(TAP_CONFIGS, f"{tac}.tac"), env=env)))
        for program, proc in runs:
            with self.subTest(program=program, args=proc.args):
                self.assertOneLine(proc, f"{program}: configuration error, not starting: {where}")

    def test_tac_names_a_bad_endpoint_variable(self) -> None:
        root = init_root(self)
        env = {"PYMTA_ROOT": root, "PYMTA_SMTP": "tcp:abc", "PYMTA_SUBMISSION": "", "PYMTA_POP3": LOOPBACK}
        runs = [twistd(root, "-y", os.path.join(TAP_CONFIGS, f"{tac}.tac"), env=env) for tac in ("smtpd", "pymta")]
        for proc in runs:
            self.assertOneLine(proc, "PYMTA_SMTP=tcp:abc", "bad endpoint")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ctl(root: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pymta.cli.main", "ctl", "--root", root, command],
                          cwd=PROJECT, capture_output=True, text=True, timeout=WAIT)


def served_certificate(port: int) -> bytes:
    """The DER certificate a new STARTTLS session on C{port} presents."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.starttls(context=context)
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        assert der is not None
        return der


class RunningDaemonTests(SynchronousTestCase):
    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
        finished(proc)

    def start(self, root: str, port: int) -> subprocess.Popen:
        proc = twistd(root, "pymta", "--root", root, "--smtp", f"tcp:{port}:interface=127.0.0.1", "--no-delivery")
        self.addCleanup(self.stop, proc)
        deadline = time.monotonic() + WAIT
        while not os.path.exists(os.path.join(root, "run", "ctl.sock")) or ctl(root, "stat").returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail(f"twistd pymta did not start: {finished(proc)[1]}")
            time.sleep(0.1)
        return proc

    def test_warnings_logged_at_start(self) -> None:
        """Issue 13 item 8: no certificate and no rcpthosts are logged when the daemon starts."""
        root = init_root(self)
        os.unlink(os.path.join(root, "control", "rcpthosts"))
        os.unlink(os.path.join(root, "control", "servercert.pem"))
        proc = self.start(root, free_port())
        proc.terminate()
        _, output = finished(proc)
        self.assertIn(f"pymta: {root}/control/rcpthosts: warning: absent: OPEN RELAY", output)
        self.assertIn(f"pymta: {root}/control/servercert.pem: warning: absent: no STARTTLS", output)

    def test_reload_reports_a_bad_certificate_and_keeps_the_old_one(self) -> None:
        """Issue 13 item 8: pymta ctl reload with a broken certificate exits non-zero naming it."""
        root = init_root(self)
        port = free_port()
        self.start(root, port)
        old = served_certificate(port)
        cert = os.path.join(root, "control", "servercert.pem")
        with open(cert, "rb") as f:
            good = f.read()
        write(root, "control/servercert.pem", good[: good.index(b"-----BEGIN CERTIFICATE-----")], 0o600)
        result = ctl(root, "reload")
        self.assertEqual(result.returncode, 111, result)
        self.assertEqual(result.stderr, f"pymta ctl: error: {cert}: no certificate; old values kept\n")
        self.assertEqual(served_certificate(port), old)
        write(root, "control/servercert.pem", self_signed_pem("mx.example.test"), 0o644)
        result = ctl(root, "reload")
        self.assertEqual(result.returncode, 111, result)
        self.assertIn("every local user can read the private key", result.stderr)
        self.assertEqual(served_certificate(port), old)
        os.chmod(cert, 0o600)
        if os.getuid() == 0:
            os.chown(cert, 4242, 4242)
        result = ctl(root, "reload")
        self.assertEqual((result.returncode, result.stdout), (0, "control files reread\n"), result)
        self.assertNotEqual(served_certificate(port), old)
