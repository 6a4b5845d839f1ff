"""pymta.services: the composition of pymta-smtpd hands smtpd local delivery's recipient lookup."""

from __future__ import annotations

import os

from twisted.application.service import IServiceCollection
from twisted.trial.unittest import SynchronousTestCase

from pymta.local.recipients import LocalRecipientLookup, RecentlyDeliverable
from pymta.services import smtpd_daemon
from pymta.smtpd.service import SMTPDService
from pymta.smtpd.tap import Options
from tests.smtpd.helpers import make_root


def smtpd_service_in(top: object) -> SMTPDService:
    for child in IServiceCollection(top):
        if isinstance(child, SMTPDService):
            return child
    raise AssertionError("no SMTPDService")


class SMTPDaemonComposition(SynchronousTestCase):
    def daemon(self, **controls: str) -> SMTPDService:
        root = os.path.abspath(make_root(self.mktemp(), **controls))
        options = Options()
        options.parseOptions(["--root", root, "--listen", "tcp:0:interface=127.0.0.1"])
        return smtpd_service_in(smtpd_daemon(options))

    def test_rcptcheck_asks_local_delivery(self) -> None:
        svc = self.daemon(rcptcheck="")
        lookups = [child for child in svc if isinstance(child, LocalRecipientLookup)]
        self.assertEqual(len(lookups), 1)  # its thread pool starts and stops with the SMTP service
        # smtpd asks it through the memory of recent answers
        self.assertIsInstance(svc.local_recipients, RecentlyDeliverable)
        self.assertIs(svc.local_recipients._lookup, lookups[0])
        self.assertIsNotNone(svc.context.recipient_check)

    def test_without_control_file_no_check(self) -> None:
        svc = self.daemon()
        self.assertIsNone(svc.context.recipient_check)
        with open(os.path.join(svc.root, "control", "rcptcheck"), "w") as f:
            f.write("")
        svc.context.reader.reload()
        svc.reload()
        self.assertIsNotNone(svc.context.recipient_check)
