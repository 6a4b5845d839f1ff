"""admission(): the environment and settings a client admitted by its tcp.smtp rule gets (SMTP and QMTP)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlReader
from pymta.smtpd.access import AccessRules
from pymta.smtpd.admission import admission
from tests.smtpd.helpers import make_root


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.controls = ControlReader(make_root(self.mktemp(), databytes="5000")).current

    def admit(self, rules: str, host: str | None = None):  # type: ignore[no-untyped-def]
        rule = AccessRules.parse(rules).lookup("192.0.2.7", host=host)
        return admission(self.controls, rule, "192.0.2.7", "198.51.100.1", host)

    def test_plain_rule(self) -> None:
        a = self.admit(":allow\n")
        self.assertEqual(dict(a.env), {"TCPREMOTEIP": "192.0.2.7", "TCPLOCALIP": "198.51.100.1"})
        self.assertEqual((a.relayclient, a.databytes), (None, 5000))

    def test_rule_variables(self) -> None:
        a = self.admit('=mx.example:allow,RELAYCLIENT="",DATABYTES="10",X="y"\n', host="mx.example")
        self.assertEqual(a.env["TCPREMOTEHOST"], "mx.example")
        self.assertEqual((a.env["X"], a.relayclient, a.databytes), ("y", "", 10))

    def test_databytes_of_the_rule_may_be_zero(self) -> None:
        self.assertEqual(self.admit(':allow,DATABYTES="0"\n').databytes, 0)
