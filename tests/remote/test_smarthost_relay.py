"""
Integration: remote delivery through a smarthost that wants AUTH, the
smarthost being a real C{twistd pymta} (its own root, user dave) with a
submission listener over implicit TLS (port 465 style) and one with
STARTTLS (port 587 style), on 127.0.0.1.  The sending side is
RemoteChannel with a second pymta root, an smtproutes route with C{smtps}
/ C{auth=dave} / C{ca=} and the password in control/smarthostauth.

The message arrives in dave's Maildir; with a wrong password, or a
certificate the route does not trust, the delivery is deferred and
nothing arrives.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import defer, reactor
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.remote.channel import RemoteChannel
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import make_certificate

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIL_IDS = (4242, 4242)
PASSWORD = "dave's secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class Smarthost:
    """C{twistd pymta} for other.example in a temporary root: SMTPS on C{smtps}, submission with STARTTLS on C{submission}."""

    def __init__(self, base: str, cert: bytes, key: bytes) -> None:
        self.root = os.path.join(base, "other")
        init = [sys.executable, "-m", "pymta.cli.main", "init", self.root, "--me", "other.example",
                "--user", f"dave:{PASSWORD}"]
        owner = None
        if os.getuid() == 0:
            init += ["--mail-uid", f"{MAIL_IDS[0]}:{MAIL_IDS[1]}"]
            owner = MAIL_IDS
        subprocess.run(init, check=True, cwd=SRC, stdout=subprocess.DEVNULL)
        certfile = os.path.join(self.root, "control", "servercert.pem")
        with open(certfile, "wb") as f:
            f.write(key + cert)
        os.chmod(certfile, 0o600)
        if owner:
            os.chown(certfile, *owner)
        self.maildir = os.path.join(self.root, "home", "dave", "Maildir", "new")
        self.log = os.path.join(base, "other.log")
        self.smtps, self.submission = free_port(), free_port()
        command = [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
                   f"--logfile={self.log}", "pymta", "--root", self.root,
                   "--submission", f"ssl:{self.smtps}:interface=127.0.0.1",
                   "--submission", f"tcp:{self.submission}:interface=127.0.0.1"]
        self.process = subprocess.Popen(command, cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (listening(self.smtps) and listening(self.submission)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"twistd pymta did not start:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def delivered(self) -> list[bytes]:
        found = []
        for name in sorted(os.listdir(self.maildir)):
            with open(os.path.join(self.maildir, name), "rb") as f:
                found.append(f.read())
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SmarthostRelayTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        # traversable by the mail uid, and short
        base = tempfile.mkdtemp(prefix="pymta-smarthost-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base
        cert, key = make_certificate("other.example")  # names other.example and 127.0.0.1
        self.ca = os.path.join(base, "other-ca.pem")
        with open(self.ca, "wb") as f:
            f.write(cert)
        self.smarthost = Smarthost(base, cert, key)
        self.addCleanup(self.smarthost.stop)

    @defer.inlineCallbacks
    def deliver(self, route: str, password: str = PASSWORD, body: bytes = b"Subject: relayed\n\nvia the smarthost\n"):
        root = make_root(self.mktemp(), {"smtproutes": f"other.example:{route}",
                                         "smarthostauth": f"[127.0.0.1] dave {password}"})
        os.chmod(os.path.join(root, "control", "smarthostauth"), 0o600)
        channel = RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=reactor,
                                is_own_address=lambda a: False, idle_seconds=0)
        try:
            results = yield channel.deliver(job(root, ["dave@other.example"], body))
        finally:
            yield channel.stop()
        return results

    @defer.inlineCallbacks
    def wait_for_mail(self, count: int):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.smarthost.delivered()
            if len(found) >= count:
                return found
            yield self.sleep(0.1)
        self.fail(f"no mail for dave at the smarthost; its log:\n{self.smarthost.log_text()}")

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(seconds, d.callback, None)
        return d

    @defer.inlineCallbacks
    def test_implicit_tls_and_starttls_with_auth(self):
        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.smtps} smtps auth=dave ca={self.ca}")
        self.assertEqual(result.status, SUCCESS, result.text)
        self.assertIn("127.0.0.1 accepted message.", result.text)
        [first] = yield self.wait_for_mail(1)
        self.assertIn(b"via the smarthost", first)
        self.assertIn(b"with ESMTPSA", first)  # authenticated, over TLS
        self.assertIn(": AUTH PLAIN ok as dave", self.smarthost.log_text())

        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.submission} auth=dave ca={self.ca}",
                                      body=b"Subject: starttls\n\nport 587 style\n")
        self.assertEqual(result.status, SUCCESS, result.text)
        mails = yield self.wait_for_mail(2)
        self.assertTrue(any(b"port 587 style" in m for m in mails))

    @defer.inlineCallbacks
    def test_wrong_password_defers_and_delivers_nothing(self):
        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.smtps} smtps auth=dave ca={self.ca}",
                                      password="not the password")
        self.assertEqual(result.status, DEFERRAL, result.text)
        self.assertTrue(result.text.startswith("Connected to 127.0.0.1 but AUTH PLAIN as dave failed "
                                               "(see control/smarthostauth).\nRemote host said: 535"), result.text)
        self.assertNotIn("not the password", result.text)
        yield self.sleep(0.5)
        self.assertEqual(self.smarthost.delivered(), [])
        self.assertRegex(self.smarthost.log_text(), r": AUTH PLAIN (refused|failed) for dave")

    @defer.inlineCallbacks
    def test_untrusted_certificate_defers_before_any_credentials(self):
        other_ca = os.path.join(self.base, "someone-else.pem")
        with open(other_ca, "wb") as f:
            f.write(make_certificate("other.example")[0])  # same names, another key
        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.smtps} smtps auth=dave ca={other_ca}")
        self.assertEqual(result.status, DEFERRAL, result.text)
        self.assertTrue(result.text.startswith("TLS session with 127.0.0.1 failed: "), result.text)
        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.submission} auth=dave ca={other_ca}")
        self.assertEqual(result.status, DEFERRAL, result.text)
        self.assertTrue(result.text.startswith("TLS session with 127.0.0.1 failed: "), result.text)
        # without ca=, the system's CAs do not know this self-signed certificate either
        [result] = yield self.deliver(f"[127.0.0.1]:{self.smarthost.smtps} smtps auth=dave")
        self.assertEqual(result.status, DEFERRAL, result.text)
        yield self.sleep(0.5)
        self.assertEqual(self.smarthost.delivered(), [])
        self.assertNotIn(": AUTH ", self.smarthost.log_text())  # no credentials went to an unverified server
