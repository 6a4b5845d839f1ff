"""
Interop: RemoteChannel delivering to a real Postfix on 127.0.0.1 (plain,
opportunistic STARTTLS, verified STARTTLS, a refused recipient).  Runs as
root with Debian's postfix installed (benchmarks/remote_install_postfix.sh),
skipped otherwise.
"""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from pymta.interfaces import FAILURE, SUCCESS
from pymta.remote.channel import RemoteChannel
from tests.remote import postfix
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import make_certificate

SKIP = postfix.available()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostfixInteropTests(unittest.TestCase):
    timeout = 90
    if SKIP:
        skip = SKIP

    def setUp(self) -> None:
        self.port = free_port()
        cert, key = make_certificate("sink.example.test")
        self.ca = os.path.abspath(self.mktemp())
        with open(self.ca, "wb") as f:
            f.write(cert)
        self.postfix = postfix.PostfixInstance("/tmp/pymta-postfix-%d" % os.getpid(), self.port, cert, key,
                                               users=("plain", "tls", "verified"))
        self.addCleanup(self.postfix.remove)
        self.postfix.start()
        self.addCleanup(self.postfix.stop)

    @defer.inlineCallbacks
    def wait_for(self, user: str, count: int = 1) -> defer.Generator:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            messages = self.postfix.maildir_messages(user)
            if len(messages) >= count:
                return messages
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.fail(f"no mail for {user} in Postfix's Maildir; log:\n{self.postfix.maillog()[-3000:]}")

    @defer.inlineCallbacks
    def deliver(self, controls: dict[str, str], recipients: list[str], body: bytes) -> defer.Generator:
        root = make_root(self.mktemp(), controls)
        resolver = FakeResolver(hosts={"sink.example.test": ["127.0.0.1"]})
        channel = RemoteChannel(root, reader(root), resolver=resolver, reactor=reactor, is_own_address=lambda a: False)
        try:
            for _ in range(50):  # postfix's smtpd may need a moment after start
                results = yield channel.deliver(job(root, recipients, body))
                if not results[0].text.startswith("Sorry, I wasn't able"):
                    return results
                yield task.deferLater(reactor, 0.1, lambda: None)
            return results
        finally:
            yield channel.stop()

    @defer.inlineCallbacks
    def test_delivers_plain_and_over_starttls(self) -> defer.Generator:
        route = f"example.test:sink.example.test:{self.port}"
        body = b"Subject: interop\nFrom: alice@pymta.example\n\n.a dot line\n8bit: \xc3\xa9t\xc3\xa9\n"

        plain = yield self.deliver({"smtproutes": route, "tlsdestinations": "-example.test"},
                                   ["plain@example.test", "nobody@example.test"], body)
        self.assertEqual(plain[0].status, SUCCESS, plain[0].text)
        self.assertIn("127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: queued as ", plain[0].text)
        self.assertEqual(plain[1].status, FAILURE)
        self.assertIn("does not like recipient.\nRemote host said: 550 5.1.1 <nobody@example.test>", plain[1].text)

        opportunistic = yield self.deliver({"smtproutes": route}, ["tls@example.test"], body)
        self.assertEqual(opportunistic[0].status, SUCCESS, opportunistic[0].text)

        verified = yield self.deliver({"smtproutes": route, "tlsdestinations": f"example.test:{self.ca}"},
                                      ["verified@example.test"], body)
        self.assertEqual(verified[0].status, SUCCESS, verified[0].text)

        [plain_mail] = yield self.wait_for("plain")
        [tls_mail] = yield self.wait_for("tls")
        [verified_mail] = yield self.wait_for("verified")
        self.assertNotIn(b"(using TLS", plain_mail)
        self.assertIn(b"(using TLS", tls_mail)
        self.assertIn(b"(using TLS", verified_mail)
        for mail in (plain_mail, tls_mail, verified_mail):
            self.assertTrue(mail.startswith(b"Return-Path: <alice@pymta.example>\n"), mail[:80])
            self.assertTrue(mail.endswith(b"\n\n.a dot line\n8bit: \xc3\xa9t\xc3\xa9\n"), mail[-80:])
