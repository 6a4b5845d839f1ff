"""--qmtp on twistd pymta and twistd pymta-smtpd: parsed, and a QMTP listener inside the SMTP service."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection
from twisted.python import usage
from twisted.trial import unittest

from pymta import tap
from pymta.qmtpd.service import QMTPFactory
from pymta.smtpd import tap as smtpd_tap
from tests.test_tap import make_root


def qmtp_listeners(service: IService) -> list[StreamServerEndpointService]:
    found = []
    for child in IServiceCollection(service, ()):
        if isinstance(child, StreamServerEndpointService) and isinstance(child.factory, QMTPFactory):
            found.append(child)
        found += qmtp_listeners(child)
    return found


class OptionTests(unittest.SynchronousTestCase):
    def test_qmtp_alone_is_enough(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--qmtp", "tcp:0:interface=127.0.0.1", "--qmtp", "tcp:0"])
        self.assertEqual(options["qmtp"], ["tcp:0:interface=127.0.0.1", "tcp:0"])
        o = smtpd_tap.Options()
        o.parseOptions(["--root", root, "--qmtp", "tcp:209"])
        self.assertEqual((o["qmtp"], o["listen"]), (["tcp:209"], []))

    def test_bad_endpoint(self) -> None:
        e = self.assertRaises(usage.UsageError, smtpd_tap.Options().parseOptions, ["--root", "/x", "--qmtp", "tcp:abc"])
        self.assertIn("tcp:abc", str(e))

    def test_services_listen_for_qmtp(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--qmtp", "tcp:0:interface=127.0.0.1", "--no-delivery"])
        self.assertEqual(len(qmtp_listeners(tap.makeService(options))), 1)
        o = smtpd_tap.Options()
        o.parseOptions(["--root", root, "--listen", "tcp:0:interface=127.0.0.1", "--qmtp", "tcp:0:interface=127.0.0.1"])
        self.assertEqual(len(qmtp_listeners(smtpd_tap.makeService(o))), 1)
