"""
pymta check on a null client (control/qmqpservers): no queue is needed;
a file that lists no server is an error; a root with both a queue and
qmqpservers is warned about, naming the servers mail goes to instead.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import init as init_command
from pymta.configcheck import CHECKERS, run_checks
from pymta.configcheck.daemonchecks import checkers_of
from pymta.configcheck.nullclient import check_null_client
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import check, init_root, located, write


class NullClientTests(SynchronousTestCase):
    def null_client(self) -> str:
        """A root made by C{pymta init --null-client}: control/me and control/qmqpservers only."""
        base = tempfile.mkdtemp(prefix="pymta-check-")
        self.addCleanup(shutil.rmtree, base, True)
        root = os.path.join(base, "app")
        argv = [root, "--me", "app.example.test", "--null-client", "192.0.2.1", "192.0.2.2:6280"]
        self.assertEqual(init_command.main(argv, stdout=io.StringIO(), stderr=io.StringIO()), 0)
        return root

    def test_a_null_client_needs_no_queue(self) -> None:
        root = self.null_client()
        problems = run_checks(root)
        self.assertEqual([p for p in problems if "queue" in p.path or "queue" in p.text], [])
        self.assertEqual(check(root, check_null_client), [])
        self.assertIn(check_null_client, CHECKERS)
        self.assertIn(check_null_client, checkers_of("pymta-smtpd"))

    def test_no_server_listed_is_an_error(self) -> None:
        root = self.null_client()
        write(root, "control/qmqpservers", "# none yet\n")
        problems = check(root, check_null_client)
        self.assertEqual(located(root, problems), [("control/qmqpservers", 0, ERROR)])
        self.assertIn("lists no server", problems[0].text)

    def test_bad_lines_are_the_control_files_check_to_report(self) -> None:
        root = self.null_client()
        write(root, "control/qmqpservers", "mail.example.test\n")
        self.assertEqual(check(root, check_null_client), [])
        self.assertEqual(located(root, [p for p in run_checks(root) if p.is_error]), [("control/qmqpservers", 1, ERROR)])

    def test_a_queue_beside_qmqpservers_is_named(self) -> None:
        root = init_root(self)
        write(root, "control/qmqpservers", "192.0.2.1\n[2001:db8::1]:6280\n")
        problems = check(root, check_null_client)
        self.assertEqual(located(root, problems), [("control/qmqpservers", 0, WARNING)])
        self.assertIn("192.0.2.1:628, [2001:db8::1]:6280", problems[0].text)
        self.assertIn("queue", problems[0].text)
