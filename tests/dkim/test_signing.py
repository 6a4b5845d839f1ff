"""DKIMSigning.sign_spooled: the domain from the header first, the body read only to sign, a size cap."""

from __future__ import annotations

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pymta.dkim.signing import MAX_SIGNED_BYTES, DKIMSigning
from tests.dkim.helpers import signing_keys, verify_all

HEADER = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: hi\n\n"
BODY = b"Hello.\n"


class Spooled:
    """A spooled message that says whether its whole text was read."""

    def __init__(self, header: bytes, body: bytes, size: int | None = None) -> None:
        self.text = header + body
        self.size = len(self.text) if size is None else size
        self.reads = 0

    def header(self, limit: int = 1024 * 1024) -> bytes:
        end = self.text.find(b"\n\n")
        return self.text[: min(limit, len(self.text) if end < 0 else end + 2)]

    def read(self) -> bytes:
        self.reads += 1
        return self.text


class SignSpooledTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_a_message_of_a_domain_with_keys_is_signed(self) -> None:
        message = Spooled(HEADER, BODY)
        fields = self.successResultOf(DKIMSigning(signing_keys()).sign_spooled(message))
        self.assertEqual(len(fields), 2)
        self.assertEqual(verify_all(b"".join(fields) + message.text), [True, True])

    def test_no_key_for_the_from_domain_reads_no_body(self) -> None:
        for header in (HEADER.replace(b"example.com", b"example.net"), b"Subject: no From\n\n",
                       b"From: a@example.com\nFrom: b@example.com\n\n"):
            message = Spooled(header, BODY)
            self.assertEqual(self.successResultOf(DKIMSigning(signing_keys()).sign_spooled(message)), ())
            self.assertEqual(message.reads, 0, header)

    def test_a_message_over_the_cap_is_not_read_nor_signed_and_is_logged(self) -> None:
        message = Spooled(HEADER, BODY, size=MAX_SIGNED_BYTES + 1)
        self.assertEqual(self.successResultOf(DKIMSigning(signing_keys()).sign_spooled(message)), ())
        self.assertEqual(message.reads, 0)
        texts = [e.get("log_format", "") for e in self.events]
        self.assertTrue(any("over the signing limit" in text for text in texts), texts)
        at_cap = Spooled(HEADER, BODY, size=MAX_SIGNED_BYTES)
        self.assertEqual(len(self.successResultOf(DKIMSigning(signing_keys()).sign_spooled(at_cap))), 2)
