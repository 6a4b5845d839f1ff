"""--qmqp on twistd pymta and twistd pymta-smtpd: parsed, and a QMQP listener inside the SMTP service."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection
from twisted.python import usage
from twisted.trial import unittest

from pymta import tap
from pymta.qmqpd.service import QMQPFactory
from pymta.smtpd import tap as smtpd_tap
from tests.test_tap import make_root


def qmqp_listeners(service: IService) -> list[StreamServerEndpointService]:
    found = []
    for child in IServiceCollection(service, ()):
        if isinstance(child, StreamServerEndpointService) and isinstance(child.factory, QMQPFactory):
            found.append(child)
        found += qmqp_listeners(child)
    return found


class OptionTests(unittest.SynchronousTestCase):
    def test_qmqp_alone_is_enough(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--qmqp", "tcp:0:interface=127.0.0.1", "--qmqp", "tcp:0"])
        self.assertEqual(options["qmqp"], ["tcp:0:interface=127.0.0.1", "tcp:0"])
        o = smtpd_tap.Options()
        o.parseOptions(["--root", root, "--qmqp", "tcp:628"])
        self.assertEqual((o["qmqp"], o["listen"], o["qmtp"]), (["tcp:628"], [], []))

    def test_bad_endpoint(self) -> None:
        e = self.assertRaises(usage.UsageError, smtpd_tap.Options().parseOptions, ["--root", "/x", "--qmqp", "tcp:abc"])
        self.assertIn("tcp:abc", str(e))

    def test_services_listen_for_qmqp(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--qmqp", "tcp:0:interface=127.0.0.1", "--no-delivery"])
        self.assertEqual(len(qmqp_listeners(tap.makeService(options))), 1)
        o = smtpd_tap.Options()
        o.parseOptions(["--root", root, "--listen", "tcp:0:interface=127.0.0.1", "--qmqp", "tcp:0:interface=127.0.0.1"])
        self.assertEqual(len(qmqp_listeners(smtpd_tap.makeService(o))), 1)
