"""Tests for pymta.dsn.report: RFC 3464 reports, read back with Python's email package."""

import email
import email.policy
import io

from twisted.trial import unittest

from pymta.dsn.report import (
    ReportHeader,
    compose_report,
    failure_report,
    parse_bounce_blocks,
    success_report,
)

MESSAGE = b"Received: (qmail 1 invoked from network); 1 Jan 2026\nSubject: hello\nFrom: a@x\n\nbody line\n"
NOW = 1_795_000_000


def build(recipients, **header) -> email.message.EmailMessage:
    fields = dict(reporting_mta="mx.example", bounce_from="MAILER-DAEMON@mx.example", to="a@x", return_path="<a@x>",
                  arrival=NOW - 60)
    fields.update(header)
    out = io.BytesIO()
    compose_report(out.write, ReportHeader(**fields), recipients, io.BytesIO(MESSAGE), NOW, "mx.example")
    return email.message_from_bytes(out.getvalue(), policy=email.policy.default)  # type: ignore[return-value]


def status_groups(report: email.message.EmailMessage) -> list:
    status = report.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    return status.get_payload()


class FieldsTests(unittest.SynchronousTestCase):
    def test_remote_refusal(self) -> None:
        r = failure_report("bob@y", "192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n"
                           "Giving up on 192.0.2.1.\n", "rfc822;orig@y")
        self.assertEqual((r.action, r.status, r.remote_mta), ("failed", "5.1.1", "dns; 192.0.2.1"))
        self.assertEqual(r.diagnostic, "smtp; 550 5.1.1 no such user")
        self.assertEqual(r.original_recipient, "rfc822;orig@y")

    def test_local_failure(self) -> None:
        r = failure_report("nobody@x", "Sorry, no mailbox here by that name. (#5.1.1)\n")
        self.assertEqual((r.status, r.remote_mta), ("5.1.1", None))
        self.assertEqual(r.diagnostic, "X-pymta; Sorry, no mailbox here by that name. (#5.1.1)")

    def test_unknown_status(self) -> None:
        self.assertEqual(failure_report("a@b", "it broke\n").status, "5.0.0")
        self.assertEqual(failure_report("a@b", "deferred too long (#4.4.7)\n").status, "5.0.0")

    def test_diagnostic_without_enhanced_code(self) -> None:
        for said in ("550 no such user", "550-no such user"):
            r = failure_report("a@b", f"192.0.2.1 does not like recipient.\nRemote host said: {said}\n")
            self.assertEqual(r.diagnostic, "smtp; 550 no such user")

    def test_blocks(self) -> None:
        data = b"<a@b>:\nfirst\nline\n\n<c@d>:\nsecond\n\n"
        self.assertEqual(parse_bounce_blocks(data), [("a@b", "first\nline"), ("c@d", "second")])


class ReportTests(unittest.SynchronousTestCase):
    def test_failure_report(self) -> None:
        report = build([failure_report("bob@y", "Sorry, no mailbox here by that name. (#5.1.1)\n", "rfc822;o@y")],
                       envid="QQ+2B1")
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["Auto-Submitted"], "auto-replied")
        human, status, returned = report.get_payload()
        self.assertIn("Hi. This is the pymta-send program at mx.example.", human.get_content())
        self.assertIn("<bob@y>:\nSorry, no mailbox here", human.get_content())
        per_message, per_recipient = status_groups(report)
        self.assertEqual(per_message["Reporting-MTA"], "dns; mx.example")
        self.assertEqual(per_message["Original-Envelope-Id"], "QQ+1")  # xtext decoded (RFC 3461 section 6.3)
        self.assertIn("Arrival-Date", per_message)
        self.assertEqual(per_recipient["Final-Recipient"], "rfc822; bob@y")
        self.assertEqual(per_recipient["Original-Recipient"], "rfc822;o@y")
        self.assertEqual(per_recipient["Action"], "failed")
        self.assertEqual(per_recipient["Status"], "5.1.1")
        self.assertEqual(returned.get_content_type(), "message/rfc822")
        self.assertIn(b"body line", returned.as_bytes())

    def test_envid_is_decoded(self) -> None:
        per_message = status_groups(build([success_report("x@y", "delivered")], envid="ab+2Bcd+3D1"))[0]
        self.assertEqual(per_message["Original-Envelope-Id"], "ab+cd=1")

    def test_returned_message_may_hold_8bit(self) -> None:
        report = build([failure_report("bob@y", "no (#5.1.1)\n")])
        returned = report.get_payload()[2]
        self.assertEqual(returned["Content-Transfer-Encoding"], "8bit")

    def test_ret_hdrs_returns_the_header(self) -> None:
        report = build([failure_report("bob@y", "no (#5.1.1)\n")], ret="HDRS")
        returned = report.get_payload()[2]
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
        self.assertIn(b"Subject: hello", returned.as_bytes())
        self.assertNotIn(b"body line", returned.as_bytes())

    def test_success_report(self) -> None:
        report = build([success_report("bob@x", "delivered"), success_report("c@y", "relayed", "rfc822;o@y")])
        self.assertEqual(report["Subject"], "Delivery Status Notification (relayed)")
        self.assertEqual(build([success_report("bob@x", "delivered")])["Subject"],
                         "Delivery Status Notification (delivered)")
        groups = status_groups(report)[1:]
        self.assertEqual([(g["Action"], g["Status"]) for g in groups], [("delivered", "2.0.0"), ("relayed", "2.0.0")])
        self.assertEqual(report.get_payload()[2].get_content_type(), "text/rfc822-headers")

    def test_recipient_fields_stay_one_line(self) -> None:
        report = build([failure_report("a\rb@y", "x (#5.1.1)\n", "rfc822;a\nb")])
        group = status_groups(report)[1]
        self.assertEqual(group["Final-Recipient"], "rfc822; a b@y")
        self.assertEqual(group["Original-Recipient"], "rfc822;a b")
        self.assertEqual(len(status_groups(report)), 2)
