"""
Certificate renewal through real running daemons: C{twistd pymta} (and a
separate C{twistd pymta-smtpd} with a pid file) on free loopback ports.

The certbot deploy hook C{pymta cert hook} writes is run as certbot runs it
(C{RENEWED_LINEAGE} naming a lineage laid out as certbot lays it out); what
the daemons serve is read from STARTTLS (SMTP) and STLS (POP3) handshakes.
A bad file written straight over C{control/servercert.pem}, bypassing
C{pymta cert}, must be refused by the reload while the old certificate stays
in use.
"""

from __future__ import annotations

import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from cryptography import x509
from twisted.trial import unittest

from pymta.cli.cert import hook_text
from tests.acmecerts import Issued, issue, make_ca, write_lineage
from tests.test_end_to_end import SRC, free_port, wait_for

BIN = os.path.dirname(os.path.abspath(sys.executable))
ME = "mx.example.org"


def _context(ca: Issued | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the clients connect to 127.0.0.1, the certificates name ME
    if ca is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=ca.cert_pem().decode())
    return context


def smtp_certificate(port: int, ca: Issued | None = None) -> x509.Certificate:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.starttls(context=_context(ca))
        der = client.sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def pop3_certificate(port: int) -> x509.Certificate:
    client = poplib.POP3("127.0.0.1", port, timeout=20)
    try:
        client.stls(context=_context())
        der = client.sock.getpeercert(binary_form=True)
    finally:
        client.quit()
    return x509.load_der_x509_certificate(der)


class RenewalTestMixin:
    def make_base(self) -> str:
        """A directory the mail account can reach (trial's temporary directories are mode 0700)."""
        base = tempfile.mkdtemp(prefix="pymta-cert-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)  # type: ignore[attr-defined]
        return base

    def init_root(self, base: str) -> str:
        root = os.path.join(base, "root")
        init = [sys.executable, "-m", "pymta.cli.main", "init", root, "--me", ME]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        subprocess.run(init, check=True, cwd=SRC, stdout=subprocess.DEVNULL, timeout=120)
        return root

    def start(self, root: str, args: list[str], ports: list[int]) -> subprocess.Popen[bytes]:
        log = os.path.join(root, "twistd.log")
        command = [os.path.join(BIN, "twistd"), "-n", f"--logfile={log}", *args]
        proc = subprocess.Popen(command, cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        self.addCleanup(stop)  # type: ignore[attr-defined]

        def listening() -> bool:
            assert proc.poll() is None, "twistd exited early; see " + log
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
            except OSError:
                return False
            return True

        wait_for(listening, 60, "the daemon to listen", log)
        self.log = log
        return proc

    def log_count(self, text: str) -> int:
        with open(self.log, errors="replace") as f:
            return f.read().count(text)

    def write_hook(self, base: str, root: str) -> str:
        hook = os.path.join(base, "deploy-hook")
        with open(hook, "w") as f:
            f.write(hook_text(os.path.join(BIN, "pymta"), root))
        os.chmod(hook, 0o755)
        return hook

    def run_hook(self, hook: str, lineage: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, RENEWED_LINEAGE=lineage)
        return subprocess.run([hook], env=env, capture_output=True, text=True, timeout=120)


class AllInOneRenewalTests(RenewalTestMixin, unittest.TestCase):
    def test_renewal_reload_and_bad_certificates(self) -> None:
        base = self.make_base()
        root = self.init_root(base)
        smtp, pop3 = free_port(), free_port()
        proc = self.start(root, ["--pidfile=", "pymta", "--root", root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                                 "--pop3", f"tcp:{pop3}:interface=127.0.0.1"], [smtp, pop3])
        self_signed = smtp_certificate(smtp)
        self.assertEqual(self_signed.issuer, self_signed.subject)

        ca = make_ca()
        letsencrypt = os.path.join(base, "letsencrypt")
        hook = self.write_hook(base, root)

        # the first certificate from the CA: installed, and both daemons reloaded by pymta ctl reload
        first = issue(ca, [ME])
        done = self.run_hook(hook, write_lineage(letsencrypt, ME, first, ca, 1))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("pymta-send (pymta ctl reload): reloaded", done.stdout)
        self.assertEqual(smtp_certificate(smtp, ca), first.cert)  # verifies against the CA: the chain is served
        self.assertEqual(pop3_certificate(pop3), first.cert)

        # renewals while clients keep connecting: every handshake gets a whole certificate
        renewals = [issue(ca, [ME]) for _ in range(3)]
        known = {first.cert.serial_number} | {r.cert.serial_number for r in renewals}
        seen: list[int] = []
        failures: list[str] = []
        stop = threading.Event()

        def handshakes() -> None:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline and len(seen) < 500:
                try:
                    seen.append(smtp_certificate(smtp).serial_number)
                except (OSError, smtplib.SMTPException) as e:
                    failures.append(repr(e))

        clients = [threading.Thread(target=handshakes) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            for version, renewal in enumerate(renewals, start=2):
                done = self.run_hook(hook, write_lineage(letsencrypt, ME, renewal, ca, version))
                self.assertEqual(done.returncode, 0, done.stderr)
        finally:
            stop.set()
            for client in clients:
                client.join(90)
        self.assertEqual(failures, [])
        self.assertGreater(len(seen), 0)
        self.assertTrue(set(seen) <= known, "a handshake served a certificate that was never installed")
        latest = renewals[-1]
        self.assertEqual(smtp_certificate(smtp), latest.cert)
        self.assertEqual(pop3_certificate(pop3), latest.cert)

        # a bad renewal through the hook: refused, the file and the daemons keep the latest
        expired = issue(ca, [ME], days=1, starts=-2)
        done = self.run_hook(hook, write_lineage(letsencrypt, ME, expired, ca, 9))
        self.assertEqual(done.returncode, 1)
        self.assertIn("refused", done.stderr)
        self.assertEqual(smtp_certificate(smtp), latest.cert)

        # bad files written straight over servercert.pem, bypassing pymta cert: the reload is refused
        path = os.path.join(root, "control", "servercert.pem")
        with open(path, "rb") as f:
            good = f.read()
        stranger = issue(ca, [ME])
        for bad in (stranger.key_pem() + latest.cert_pem(), good[: len(good) // 2], b""):
            with open(path, "wb") as f:
                f.write(bad)
            ctl = subprocess.run([os.path.join(BIN, "pymta"), "ctl", "--root", root, "reload"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(ctl.returncode, 111, ctl.stdout)
            self.assertIn("servercert.pem", ctl.stderr)
            self.assertEqual(smtp_certificate(smtp), latest.cert)
            self.assertEqual(pop3_certificate(pop3), latest.cert)
        # and the same through SIGHUP (systemctl reload sends it)
        refusals = self.log_count("unable to reread controls")
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: self.log_count("unable to reread controls") > refusals, 30, "the refused reload in the log", self.log)
        self.assertIsNone(proc.poll())
        self.assertEqual(smtp_certificate(smtp), latest.cert)


class SeparateSmtpdRenewalTests(RenewalTestMixin, unittest.TestCase):
    def test_pidfile_reload(self) -> None:
        base = self.make_base()
        root = self.init_root(base)
        smtp = free_port()
        pidfile = os.path.join(root, "run", "smtpd.pid")
        self.start(root, [f"--pidfile={pidfile}", "pymta-smtpd", "--root", root,
                          "--listen", f"tcp:{smtp}:interface=127.0.0.1"], [smtp])
        ca = make_ca()
        renewal = issue(ca, [ME])
        lineage = write_lineage(os.path.join(base, "letsencrypt"), ME, renewal, ca)
        done = subprocess.run([os.path.join(BIN, "pymta"), "cert", "install", "--root", root,
                               "--cert", os.path.join(lineage, "fullchain.pem"),
                               "--key", os.path.join(lineage, "privkey.pem"), "--pidfile", pidfile],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"{pidfile}: SIGHUP sent to pid ", done.stdout)
        wait_for(lambda: smtp_certificate(smtp) == renewal.cert, 30, "smtpd to serve the renewed certificate", self.log)
