"""Each daemon checks the files it reads; an expired certificate and a bad users/passwd line do not stop it."""

from __future__ import annotations

import datetime
from typing import cast

from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pymta.certs import self_signed_pem
from pymta.configcheck import CHECKERS, run_checks, startup
from pymta.configcheck.daemonchecks import EXPIRED_KEPT, checkers_of
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import init_root, write

CERT = "control/servercert.pem"


class DaemonCheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict] = []
        self.patch(startup, "log", Logger(namespace="test", observer=cast(ILogObserver, self.events.append)))
        self.root = init_root(self)

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def expire_certificate(self) -> None:
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=40)
        write(self.root, CERT, self_signed_pem("mx.example.test", days=30, now=past), 0o600)

    def test_expired_certificate(self) -> None:
        self.expire_certificate()
        check = [p for p in run_checks(self.root) if p.path.endswith("servercert.pem")]
        self.assertEqual([p.severity for p in check], [ERROR])  # pymta check still says error
        for program in ("pymta-send", "pymta-smtpd", "pymta-pop3d", "pymta"):
            startup.checked_reader(self.root, program)  # starts
        self.assertNotIn("pymta-send:", self.logged())  # pymta-send does not read it
        self.assertIn(f"pymta-smtpd: {self.root}/{CERT}: warning: the certificate expired on ", self.logged())
        self.assertIn(EXPIRED_KEPT, self.logged())

    def test_bad_passwd_line(self) -> None:
        write(self.root, "users/passwd", "no colons here\n")
        check = [p for p in run_checks(self.root) if p.path.endswith("users/passwd") and p.line == 1]
        self.assertEqual([p.severity for p in check], [ERROR])
        for program in ("pymta-send", "pymta-smtpd", "pymta-pop3d", "pymta"):
            startup.checked_reader(self.root, program)
        self.assertNotIn("pymta-send:", self.logged())
        self.assertIn(f"pymta-pop3d: {self.root}/users/passwd:1: warning: ", self.logged())
        self.assertIn("(the daemons skip this line: no login)", self.logged())

    def test_a_file_a_daemon_reads_still_stops_it(self) -> None:
        write(self.root, "etc/tcp.smtp", "1.2.3.4:perhaps\n")
        startup.checked_reader(self.root, "pymta-send")
        startup.checked_reader(self.root, "pymta-pop3d")
        for program in ("pymta-smtpd", "pymta"):
            with self.assertRaises(SystemExit) as cm:
                startup.checked_reader(self.root, program)
            self.assertIn("etc/tcp.smtp:1: unable to parse this line", str(cm.exception.code))

    def test_every_check_but_the_queue_owner_is_some_daemons(self) -> None:
        names = {c.__name__ for program in ("pymta-send", "pymta-smtpd", "pymta-pop3d") for c in checkers_of(program)}
        self.assertEqual(names, {c.__name__ for c in CHECKERS} - {"check_queue_owner", "check_dotqmail_files"})
        self.assertEqual({c.__name__ for c in checkers_of("pymta")}, names)
        self.assertEqual(WARNING, "warning")
