"""control/servercert.pem: present, parses, key matches, expiry, modes and owner."""

from __future__ import annotations

import datetime
import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.certs import self_signed_pem
from pymta.configcheck import make_context
from pymta.configcheck.certificate import check_certificate, may_read
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import MAIL_IDS, check, init_root, located, write

CERT = "control/servercert.pem"
NOW = datetime.datetime.now(datetime.timezone.utc)


def key_and_cert(pem: bytes) -> tuple[bytes, bytes]:
    at = pem.index(b"-----BEGIN CERTIFICATE-----")
    return pem[:at], pem[at:]


class ContentTests(SynchronousTestCase):
    def test_pymta_init_certificate_is_clean(self) -> None:
        self.assertEqual(check(init_root(self), check_certificate), [])

    def test_absent_takes_tls_and_auth_off(self) -> None:
        root = init_root(self)
        os.unlink(os.path.join(root, CERT))
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, WARNING)])
        self.assertIn("no STARTTLS", problems[0].text)
        self.assertIn("POP3 refuses every login", problems[0].text)

    def test_no_key_no_certificate_key_mismatch(self) -> None:
        root = init_root(self)
        key, cert = key_and_cert(self_signed_pem("mx.example.test"))
        other_key, _ = key_and_cert(self_signed_pem("mx.example.test"))
        for data, text in ((cert, "no private key"), (key, "no certificate"),
                           (other_key + cert, "no certificate matches the private key")):
            write(root, CERT, data, 0o600)
            problems = check(root, check_certificate)
            self.assertEqual(located(root, problems), [(CERT, 0, ERROR)])
            self.assertEqual(problems[0].text, text)

    def test_expired_is_an_error(self) -> None:
        root = init_root(self)
        write(root, CERT, self_signed_pem("mx.example.test", days=30, now=NOW - datetime.timedelta(days=31)), 0o600)
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, ERROR)])
        self.assertIn("expired on", problems[0].text)

    def test_expiring_within_30_days_warns(self) -> None:
        root = init_root(self)
        write(root, CERT, self_signed_pem("mx.example.test", days=10), 0o600)
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, WARNING)])
        self.assertIn("in 9 days", problems[0].text)
        write(root, CERT, self_signed_pem("mx.example.test", days=31), 0o600)
        self.assertEqual(check(root, check_certificate), [])

    def test_not_valid_yet_warns(self) -> None:
        root = init_root(self)
        write(root, CERT, self_signed_pem("mx.example.test", now=NOW + datetime.timedelta(days=2)), 0o600)
        problems = list(check_certificate(make_context(root)))
        self.assertEqual(located(root, problems), [(CERT, 0, WARNING)])
        self.assertIn("not valid before", problems[0].text)


class ModeTests(SynchronousTestCase):
    def test_world_readable_key_is_an_error(self) -> None:
        root = init_root(self)
        os.chmod(os.path.join(root, CERT), 0o644)
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, ERROR)])
        self.assertIn("every local user can read the private key", problems[0].text)

    def test_group_readable_by_another_group_warns(self) -> None:
        root = init_root(self)
        path = os.path.join(root, CERT)
        os.chmod(path, 0o640)
        if os.getuid() == 0:
            os.chown(path, MAIL_IDS[0], 4343)
            self.assertEqual(located(root, check(root, check_certificate)), [(CERT, 0, WARNING)])
            os.chown(path, 0, MAIL_IDS[1])  # root's, readable by the mail group: fine
        self.assertEqual(check(root, check_certificate), [])

    def test_owner_and_readability_for_the_mail_account(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        root = init_root(self)
        path = os.path.join(root, CERT)
        os.chown(path, 0, 0)  # root's, 0600: read at start as root, but not on a reload
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, WARNING)])
        self.assertIn(f"not readable by uid {MAIL_IDS[0]}", problems[0].text)
        os.chown(path, 4343, MAIL_IDS[1])
        os.chmod(path, 0o440)
        problems = check(root, check_certificate)
        self.assertEqual(located(root, problems), [(CERT, 0, WARNING)])
        self.assertIn("owned by uid 4343", problems[0].text)

    def test_may_read(self) -> None:
        st = os.stat_result((0o100640, 0, 0, 1, 10, 20, 0, 0, 0, 0))
        self.assertTrue(may_read(st, (10, 99)))
        self.assertTrue(may_read(st, (11, 20)))
        self.assertFalse(may_read(st, (11, 21)))
        self.assertTrue(may_read(st, (0, 0)))
        owner_locked_out = os.stat_result((0o100040, 0, 0, 1, 10, 20, 0, 0, 0, 0))
        self.assertFalse(may_read(owner_locked_out, (10, 20)))  # the owner's bits count, not the group's
