"""The signatures of one message: signing domain, signed fields, and dkimpy's verdict on the result."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.dkim.signer import header_fields, sign_message, signed_fields, signing_domain, wire_form
from tests.dkim.helpers import signing_keys, verify_all

MESSAGE = (b"Received: from client (client [192.0.2.7]) by mx.example.org\n"
           b"From: Alice <alice@Example.COM>\nTo: bob@example.org\nCc: carol@example.net\nSubject: hello\n"
           b"Date: Thu, 1 Jan 2026 00:00:00 +0000\nMessage-ID: <1@example.com>\nList-Id: <l.example.com>\n"
           b"X-Mailer: test\n\nHello Bob.\n.\nBye.\n")


class SigningDomainTests(SynchronousTestCase):
    def domain(self, header: bytes) -> str | None:
        return signing_domain(header_fields(wire_form(header + b"\n\nbody\n")))

    def test_the_one_address_of_the_one_from(self) -> None:
        self.assertEqual(self.domain(b"From: \"A, B\" <a@Sub.Example.COM.>"), "sub.example.com")
        self.assertEqual(self.domain(b"From: a@example.com (Alice)\nTo: b@example.org"), "example.com")
        self.assertEqual(self.domain(b"From: Alice\n <a@example.com>"), "example.com")

    def test_none_without_exactly_one(self) -> None:
        self.assertIsNone(self.domain(b"To: b@example.org"))
        self.assertIsNone(self.domain(b"From: a@example.com\nFrom: b@example.com"))
        self.assertIsNone(self.domain(b"From: a@example.com, b@example.com"))
        self.assertIsNone(self.domain(b"From: undisclosed"))


class SignedFieldsTests(SynchronousTestCase):
    def test_current_practice_and_from_oversigned(self) -> None:
        names = ["received", "from", "to", "subject", "list-id", "list-unsubscribe", "x-mailer", "received",
                 "references", "to", "dkim-signature"]
        self.assertEqual(signed_fields(names), [b"from", b"to", b"subject", b"list-id", b"list-unsubscribe",
                                                b"references", b"to", b"from"])


class SignMessageTests(SynchronousTestCase):
    def signed(self, message: bytes = MESSAGE) -> bytes:
        fields = sign_message(message, signing_keys())
        self.assertEqual(len(fields), 2)
        return b"".join(fields) + message

    def test_both_signatures_verify(self) -> None:
        fields = sign_message(MESSAGE, signing_keys())
        self.assertIn(b"a=rsa-sha256;", fields[0])
        self.assertIn(b"a=ed25519-sha256;", fields[1])
        for field in fields:
            self.assertTrue(field.startswith(b"DKIM-Signature: v=1;"))
            self.assertTrue(field.endswith(b"\n") and not field.endswith(b"\n\n"))
            self.assertNotIn(b"\r", field)
            self.assertIn(b"c=relaxed/relaxed;", field)
            self.assertIn(b"d=example.com;", field)
            self.assertNotIn(b" l=", field)
            tags = field.replace(b"\n ", b" ").decode()
            h = tags.split(" h=")[1].split(";")[0].replace(" ", "")
            self.assertEqual(h, "from:to:cc:subject:date:message-id:list-id:from")
        self.assertEqual(verify_all(b"".join(fields) + MESSAGE), [True, True])

    def test_a_modified_body_fails(self) -> None:
        signed = self.signed()
        self.assertEqual(verify_all(signed.replace(b"Hello Bob.", b"Hello Bob!")), [False, False])

    def test_an_added_from_fails(self) -> None:
        signed = self.signed()
        self.assertEqual(verify_all(signed.replace(b"\n\nHello", b"\nFrom: mallory@example.net\n\nHello")),
                         [False, False])

    def test_relaxed_canonicalization_survives_refolding_and_crlf(self) -> None:
        signed = self.signed()
        refolded = signed.replace(b"Subject: hello", b"Subject:   hello").replace(b"\n", b"\r\n")
        self.assertEqual(verify_all(refolded), [True, True])

    def test_what_is_signed_is_what_is_sent(self) -> None:
        # a bare CR is a line end on the wire; a last line without one gets one
        message = MESSAGE.replace(b"Bye.\n", b"one\rtwo\nBye.")
        signed = self.signed(message)
        self.assertEqual(verify_all(signed), [True, True])
        self.assertEqual(wire_form(b"a\rb\r\nc"), b"a\r\nb\r\nc\r\n")

    def test_no_key_no_signature(self) -> None:
        self.assertEqual(sign_message(MESSAGE.replace(b"Example.COM", b"example.org"), signing_keys()), ())
        self.assertEqual(sign_message(MESSAGE, {}), ())

    def test_an_unreadable_header_is_not_signed(self) -> None:
        self.assertEqual(sign_message(b"From: a@example.com\nnot a field\n\nbody\n", signing_keys()), ())

    def test_a_message_without_body(self) -> None:
        fields = sign_message(b"From: a@example.com\nSubject: x\n", signing_keys())
        self.assertEqual(verify_all(b"".join(fields) + b"From: a@example.com\nSubject: x\n"), [True, True])
