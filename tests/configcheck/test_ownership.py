"""Owners and modes of ROOT, control/, etc/, users/, queue/ and run/."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck.ownership import check_ownership, check_queue_owner, may_write
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import MAIL_IDS, check, init_root, located


class ModeTests(SynchronousTestCase):
    def test_pymta_init_root_is_clean(self) -> None:
        root = init_root(self)
        self.assertEqual(check(root, check_ownership) + check(root, check_queue_owner), [])

    def test_world_and_group_writable_configuration(self) -> None:
        root = init_root(self)
        os.chmod(os.path.join(root, "control"), 0o777)
        os.chmod(os.path.join(root, "etc"), 0o775)
        self.assertEqual(located(root, check(root, check_ownership)), [("control", 0, ERROR), ("etc", 0, WARNING)])

    def test_world_writable_queue(self) -> None:
        root = init_root(self)
        os.chmod(os.path.join(root, "queue"), 0o777)
        self.assertEqual(located(root, check(root, check_ownership)), [("queue", 0, ERROR)])

    def test_missing_root_queue_and_control(self) -> None:
        missing = os.path.abspath(self.mktemp())
        problems = check(missing, check_ownership)
        self.assertEqual([(p.path, p.severity) for p in problems], [(missing, ERROR)])
        self.assertIn("pymta init", problems[0].text)
        os.makedirs(missing)
        self.assertEqual(located(missing, check(missing, check_ownership)),
                         [("control", 0, WARNING), ("queue", 0, WARNING)])

    def test_may_write(self) -> None:
        st = os.stat_result((0o40750, 0, 0, 1, 10, 20, 0, 0, 0, 0))
        self.assertTrue(may_write(st, (10, 20)))
        self.assertFalse(may_write(st, (11, 20)))
        self.assertTrue(may_write(st, (0, 0)))


class RootOnlyTests(SynchronousTestCase):
    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")

    def test_queue_owned_by_root_is_an_error(self) -> None:
        root = init_root(self)
        os.chown(os.path.join(root, "queue"), 0, 0)
        problems = check(root, check_queue_owner)
        self.assertEqual(located(root, problems), [("queue", 0, ERROR)])
        self.assertIn("no account to become", problems[0].text)

    def test_run_not_writable_by_the_mail_account(self) -> None:
        root = init_root(self)
        os.chown(os.path.join(root, "run"), 0, 0)
        self.assertEqual(located(root, check(root, check_ownership)), [("run", 0, ERROR)])

    def test_configuration_owned_by_the_mail_account(self) -> None:
        root = init_root(self)
        os.chown(os.path.join(root, "control"), *MAIL_IDS)
        problems = check(root, check_ownership)
        self.assertEqual(located(root, problems), [("control", 0, WARNING)])
        self.assertIn("a compromised daemon could change the configuration", problems[0].text)
