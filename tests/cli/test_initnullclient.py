"""pymta init ROOT --null-client SERVER...: a root that is only a null client."""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import init as init_command
from pymta.control import load_controls
from pymta.qmqpservers import QMQPServer, qmqp_servers


class NullClientInitTests(SynchronousTestCase):
    def run_init(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = init_command.main(list(argv), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_writes_me_and_qmqpservers_only(self) -> None:
        root = self.mktemp()
        status, out, err = self.run_init(root, "--me", "app.example", "--null-client", "192.0.2.1", "[2001:db8::1]:7628")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("is a null client", out)
        self.assertEqual(os.listdir(root), ["control"])
        self.assertEqual(sorted(os.listdir(os.path.join(root, "control"))), ["me", "qmqpservers"])
        controls = load_controls(root)
        self.assertEqual(controls.me, "app.example")
        self.assertEqual(qmqp_servers(controls), (QMQPServer("192.0.2.1"), QMQPServer("2001:db8::1", 7628)))
        # again, with other servers: qmqpservers is replaced, me kept
        self.assertEqual(self.run_init(root, "--me", "app.example", "--null-client", "192.0.2.2")[0], 0)
        self.assertEqual(qmqp_servers(load_controls(root)), (QMQPServer("192.0.2.2"),))

    def test_refusals(self) -> None:
        root = self.mktemp()
        for argv, text in ((["--null-client", "mail.example"], "not an IP address"),
                           (["--null-client", "192.0.2.1:0"], "bad port"),
                           (["--null-client", "192.0.2.1:x"], "not an IP address or IP:PORT"),
                           (["--user", "bob", "--null-client", "192.0.2.1"], "no --user or --mail-uid")):
            status, out, err = self.run_init(root, "--me", "app.example", *argv)
            self.assertEqual(status, 100, argv)
            self.assertIn(text, err)
            self.assertFalse(os.path.exists(root))
        self.assertEqual(self.run_init(root, "--me", "app.example", "--null-client", "192.0.2.1")[0], 0)
        status, out, err = self.run_init(root, "--me", "other.example", "--null-client", "192.0.2.1")
        self.assertEqual(status, 100)
        self.assertIn("says app.example, not other.example", err)
