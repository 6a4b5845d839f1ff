"""Tests for pymta.remote.tlspolicy: control/tlsdestinations, parsed strictly (file and line named)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.remote.tlspolicy import OFF, OPPORTUNISTIC, VERIFY, TLSPolicy, TLSPolicyTable, tls_destinations
from tests.smtpd.tlsutil import make_certificate


class TLSDestinationsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = os.path.abspath(self.mktemp())
        with open(self.ca, "wb") as f:
            f.write(make_certificate("ca.example", ca=True)[0])

    def test_policies(self) -> None:
        table = TLSPolicyTable(["Bank.example:", f".corp.example:{self.ca}", "-legacy.example", "*:"])
        self.assertEqual(table.policy_for("bank.example"), TLSPolicy(VERIFY, None))
        self.assertEqual(table.policy_for("mx.corp.example"), TLSPolicy(VERIFY, self.ca))
        self.assertEqual(table.policy_for("legacy.example"), TLSPolicy(OFF))
        self.assertEqual(table.policy_for("other.example"), TLSPolicy(VERIFY, None))
        self.assertEqual(TLSPolicyTable(None).policy_for("x.example"), TLSPolicy(OPPORTUNISTIC))

    def test_refused_lines(self) -> None:
        missing = os.path.abspath(self.mktemp())
        empty = os.path.abspath(self.mktemp())
        with open(empty, "w") as f:
            f.write("not a certificate\n")
        cases = {
            "bank.example": "expected domain: (TLS verified), domain:CAFILE or -domain (no TLS)",
            "-legacy.example:": "nothing may follow the domain of a -domain line",
            "bank .example:": "blank inside",
            "*.bank.example:": "'*'",
            "bank.example:ca.pem": "the CA file must be an absolute path, not 'ca.pem'",
            "bank.example: /etc/ca.pem": "the CA file must be an absolute path",
            f"bank.example:{missing}": f"unable to read the CA file {missing}: No such file or directory",
            f"bank.example:{empty}": f"no PEM certificate in the CA file {empty}",
            "ok.example:": "domain 'ok.example' repeats line 1",
            "-OK.example": "domain 'ok.example' repeats line 1",
        }
        for line, reason in cases.items():
            error = self.assertRaises(ControlError, TLSPolicyTable, ["ok.example:", line])
            self.assertTrue(str(error).startswith("tlsdestinations:2: "), str(error))
            self.assertIn(reason, str(error), line)

    def test_file_and_line(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        path = os.path.join(root, "control", "tlsdestinations")
        with open(path, "w") as f:
            f.write(f"# required TLS\nbank.example:{self.ca}\n\n*:\n:\n")
        error = self.assertRaises(ControlError, tls_destinations, load_controls(root))
        self.assertEqual(str(error), f"{path}:5: domain '*' repeats line 4: one of the two would never apply")
