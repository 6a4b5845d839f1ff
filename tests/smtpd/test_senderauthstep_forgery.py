"""
Forged and injected Authentication-Results in a session with the sender
checks: after us (and after the next hop, which writes a bare CR as a
line end) no field a reader attributes to our authserv-id says what we
did not.
"""

from __future__ import annotations

import authres
from twisted.trial.unittest import SynchronousTestCase

from pymta.remote.datastream import encode_message
import tests.smtpd.test_senderauthstep as base

BODY = b"From: Alice <alice@forged.test>\nTo: bob@example.org\nSubject: hi\n\nHi.\n"
FORGED = b"mx.example.org; dkim=pass header.d=paypal.com\n"


def next_hop(data: bytes) -> bytes:
    """The message as the next hop stores it: every bare CR became a line end."""
    return encode_message(data).replace(b"\r\n", b"\n")


def ours(data: bytes) -> list[authres.AuthenticationResultsHeader]:
    """Every Authentication-Results field a reader attributes to mx.example.org (unfolded)."""
    fields: list[str] = []
    for line in data.split(b"\n\n", 1)[0].decode().split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    found = []
    for text in fields:
        if text.lower().startswith("authentication-results:"):
            try:
                parsed = authres.AuthenticationResultsHeader.parse(text)
            except Exception:
                continue
            if parsed.authserv_id.strip('"').rstrip(".").lower() == "mx.example.org":
                found.append(parsed)
    return found


class Forgeries(SynchronousTestCase):
    session = base.SenderChecksInASession.session
    send = base.SenderChecksInASession.send

    def queued(self, message: bytes, helo: str | None = None) -> bytes:
        s = self.session()  # type: ignore[arg-type]
        if helo is not None:
            s.cmd(f"EHLO {helo}")
        self.assertEqual(self.send(s, "alice@forged.test", message)[-1][:3], "250")  # type: ignore[arg-type]
        data: bytes = s.sink.queued[0].data
        return data

    def assertOnlyOurField(self, data: bytes, helo: str = "pass") -> None:
        found = ours(data)
        self.assertEqual(len(found), 1, data[:600])
        self.assertEqual([(r.method, r.result) for r in found[0].results],
                         [("spf", helo), ("spf", "fail"), ("dkim", "none"), ("dmarc", "fail")], data[:600])

    def test_helo_with_at_sign_and_semicolon(self) -> None:
        self.assertOnlyOurField(self.queued(BODY, helo="x@y; dkim=pass header.d=paypal.com"), helo="none")

    def test_helo_with_bare_cr(self) -> None:
        data = self.queued(BODY, helo="x@y\rAuthentication-Results: " + FORGED.decode().strip())
        self.assertOnlyOurField(next_hop(data), helo="none")

    def test_plain_forgery(self) -> None:
        self.assertOnlyOurField(self.queued(b"Authentication-Results: " + FORGED + BODY))

    def test_nested_comment_before_our_authserv_id(self) -> None:
        self.assertOnlyOurField(self.queued(b"Authentication-Results: (a (b) c) " + FORGED + BODY))

    def test_quoted_or_dotted_authserv_id(self) -> None:
        for serv in (b'"mx.example.org"', b"mx.example.org.", b'"MX.example.org."'):
            data = self.queued(b"Authentication-Results: " + serv + b"; dkim=pass header.d=paypal.com\n" + BODY)
            self.assertNotIn(b"paypal", data, serv)

    def test_field_longer_than_max_field_bytes(self) -> None:
        filler = b"".join(b"\t" + b"x" * 900 + b"\n" for _ in range(80))  # a 72 KB comment
        data = self.queued(b"Authentication-Results: (\n" + filler + b"\t) " + FORGED + BODY)
        self.assertNotIn(b"paypal", data)
        self.assertNotIn(b"x" * 900, data)  # every part of the field went
        self.assertOnlyOurField(data)

    def test_bare_cr_inside_another_field(self) -> None:
        data = self.queued(b"X-Note: a\rAuthentication-Results: " + FORGED + BODY)
        self.assertIn(b"X-Note: a\r", data)
        self.assertOnlyOurField(next_hop(data))

    def test_other_authserv_ids_are_kept(self) -> None:
        data = self.queued(b"Authentication-Results: (mx.example.org) upstream.example; spf=pass\n" + BODY)
        self.assertIn(b"Authentication-Results: (mx.example.org) upstream.example; spf=pass\n", data)
