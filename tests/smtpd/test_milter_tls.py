"""The TLS macros a filter gets at EHLO after a real STARTTLS (smtpd on a loopback socket, smtplib in a thread)."""

from __future__ import annotations

import os
import smtplib
import ssl

from twisted.internet import reactor, threads
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.factory import SMTPFactory
from pymta.tls import ServerTLS
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.milterfake import FakeMilter
from tests.smtpd.tlsutil import write_cert


class TLSMacros(unittest.TestCase):
    timeout = 60

    def test_tls_macros_at_ehlo_after_starttls(self):  # type: ignore[no-untyped-def]
        root = make_root(os.path.abspath(self.mktemp()), smtpgreeting="mx.example.org")
        cert = os.path.join(root, "control", "servercert.pem")
        write_cert(cert)
        milter = FakeMilter()
        context = SMTPDContext(reader=ControlReader(root), sink=MemorySink(), clock=reactor, tls=ServerTLS(cert),
                               milters=lambda: milter)
        port = reactor.listenTCP(0, SMTPFactory(context), interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        def client() -> None:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port.getHost().port, timeout=30) as smtp:
                smtp.ehlo("client.example")
                smtp.starttls(context=tls)
                smtp.ehlo("client.example")
                smtp.quit()

        def check(_: object) -> None:
            helos = [call[2] for call in milter.calls if call[0] == "helo"]
            self.assertEqual(len(helos), 2)
            self.assertNotIn("{tls_version}", helos[0])
            self.assertEqual(helos[1]["{tls_version}"], "TLSv1.3")
            self.assertTrue(helos[1]["{cipher}"])
            self.assertGreaterEqual(int(helos[1]["{cipher_bits}"]), 128)
            self.assertNotIn("{cert_subject}", helos[1])  # the client showed no certificate

        return threads.deferToThread(client).addCallback(check)
