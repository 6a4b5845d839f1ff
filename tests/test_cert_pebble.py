"""
Certificates from a real ACME exchange: Pebble (Let's Encrypt's ACME test
server) on 127.0.0.1 issues, certbot obtains and renews, and the deploy hook
C{pymta cert hook} writes, saved in certbot's C{renewal-hooks/deploy/},
installs the renewals into a running C{twistd pymta}.

Pebble runs with C{PEBBLE_VA_ALWAYS_VALID=1}: it accepts every challenge
without connecting anywhere, so nothing leaves the machine.  Debian's
C{pebble} and C{certbot} are installed when missing (as root); skipped only
when they cannot be had.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import urllib.request

from cryptography import x509
from twisted.trial import unittest

from pymta.cli.cert import hook_text
from tests.acmecerts import issue, make_ca
from tests.packages import ensure_program
from tests.test_cert_renewal import BIN, ME, RenewalTestMixin, smtp_certificate
from tests.test_end_to_end import free_port, wait_for

COMMAND_TIMEOUT = 120


class PebbleRenewalTests(RenewalTestMixin, unittest.TestCase):
    def setUp(self) -> None:
        for program in ("pebble", "certbot"):  # Debian's packages of the same names, installed when missing
            if ensure_program(program, program) is None:
                raise unittest.SkipTest(f"{program} is not installed and Debian's package {program} could not be")
        self.base = self.make_base()
        self.start_pebble()

    def start_pebble(self) -> None:
        """Pebble on free loopback ports, its API served with a certificate from a CA of this test."""
        api_ca = make_ca("pebble API CA of this test")
        api = issue(api_ca, ["localhost"], ips=("127.0.0.1",))
        directory = os.path.join(self.base, "pebble")
        os.mkdir(directory)
        self.api_ca = os.path.join(directory, "api-ca.pem")
        for name, data in (("api-ca.pem", api_ca.cert_pem()), ("api.pem", api.cert_pem()), ("api.key", api.key_pem())):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        self.acme_port, self.management_port = free_port(), free_port()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": os.path.join(directory, "api.pem"),
            "privateKey": os.path.join(directory, "api.key"),
            "httpPort": free_port(), "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}
        with open(os.path.join(directory, "pebble.json"), "w") as f:
            json.dump(config, f)
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        log = open(os.path.join(directory, "pebble.log"), "wb")
        self.addCleanup(log.close)
        pebble = subprocess.Popen(["pebble", "-config", os.path.join(directory, "pebble.json")],
                                  cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)

        def stop() -> None:
            pebble.terminate()
            try:
                pebble.wait(30)
            except subprocess.TimeoutExpired:
                pebble.kill()
                pebble.wait()

        self.addCleanup(stop)

        def listening() -> bool:
            self.assertIsNone(pebble.poll(), "pebble exited early")
            try:
                socket.create_connection(("127.0.0.1", self.acme_port), 0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, 30, "pebble to listen")

    def pebble_root(self) -> bytes:
        """The root certificate Pebble made at start (its management API)."""
        context = ssl.create_default_context(cafile=self.api_ca)
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=30) as reply:  # noqa: S310 - loopback only
            data: bytes = reply.read()
        return data

    def certbot(self, *args: str) -> subprocess.CompletedProcess[str]:
        letsencrypt = os.path.join(self.base, "letsencrypt")
        command = ["certbot", *args, "--non-interactive",
                   "--config-dir", letsencrypt,
                   "--work-dir", os.path.join(self.base, "certbot-work"),
                   "--logs-dir", os.path.join(self.base, "certbot-logs")]
        # certbot is the system's Python program: without PYTHONPATH (trial -j sets it), which
        # would give it this venv's cryptography and pyOpenSSL instead of the system's
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["REQUESTS_CA_BUNDLE"] = self.api_ca
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    def certonly(self, name: str) -> None:
        done = self.certbot("certonly", "--agree-tos", "--register-unsafely-without-email",
                            "--server", f"https://127.0.0.1:{self.acme_port}/dir",
                            "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", str(free_port()),
                            "-d", name)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def live(self, name: str, kind: str = "cert") -> x509.Certificate:
        with open(os.path.join(self.base, "letsencrypt", "live", name, f"{kind}.pem"), "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def test_issue_and_renew_through_certbot(self) -> None:
        root = self.init_root(self.base)
        smtp = free_port()
        self.start(root, ["--pidfile=", "pymta", "--root", root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1"], [smtp])

        hooks = os.path.join(self.base, "letsencrypt", "renewal-hooks", "deploy")
        os.makedirs(hooks)
        hook = os.path.join(hooks, "pymta")
        with open(hook, "w") as f:
            f.write(hook_text(os.path.join(BIN, "pymta"), root))
        os.chmod(hook, 0o755)

        # the first issuance: certbot runs no directory hook for certonly, so it is run by hand
        self.certonly(ME)
        self.certonly("www.example.org")  # another certificate on the machine, e.g. a web server's
        first = self.live(ME)
        done = self.run_hook(hook, os.path.join(self.base, "letsencrypt", "live", ME))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(smtp_certificate(smtp), first)

        # the chain served verifies up to Pebble's root
        root_ca = self.pebble_root()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=root_ca.decode())
        context.check_hostname = True
        with socket.create_connection(("127.0.0.1", smtp), timeout=30) as raw:
            raw.recv(1024)
            raw.sendall(b"EHLO client.example\r\n")
            reply = b""
            while b"\n250 " not in b"\n" + reply:  # up to the last line of the EHLO reply
                data = raw.recv(4096)
                self.assertNotEqual(data, b"", "the server closed the connection")
                reply += data
            raw.sendall(b"STARTTLS\r\n")
            self.assertTrue(raw.recv(1024).startswith(b"220"))
            with context.wrap_socket(raw, server_hostname=ME) as tls:
                self.assertEqual(x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)), first)

        # a renewal: certbot runs the hook for each renewed certificate; only the MX name's is installed
        done = self.certbot("renew", "--force-renewal", "--no-random-sleep-on-renew")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        renewed = self.live(ME)
        self.assertNotEqual(renewed.serial_number, first.serial_number)
        self.assertEqual(smtp_certificate(smtp), renewed)
        self.assertNotEqual(smtp_certificate(smtp), self.live("www.example.org"))
        with open(os.path.join(self.base, "certbot-logs", "letsencrypt.log"), errors="replace") as f:
            self.assertIn("skipped", f.read())  # the hook's output for the other certificate
