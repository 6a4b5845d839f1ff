"""Locally injected messages are signed at the inject socket's sink; other origins pass straight through."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.dkim.localsigning import LocalSigningSink
from pymta.dkim.signing import DKIMSigning
from pymta.dsn.params import MessageDsn
from pymta.interfaces import QueueReceipt
from tests.dkim.helpers import signing_keys, verify_all

MESSAGE = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: hi\n\nHello.\n"


class Writer:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def watch_backlog(self, pause, resume) -> None:  # type: ignore[no-untyped-def]
        pass

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        return defer.succeed(QueueReceipt(1, 2))

    def abort(self) -> None:
        pass


class Sink:
    def __init__(self) -> None:
        self.writers: list[Writer] = []

        self.dsn: list[object] = []

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None, **dsn):  # type: ignore[no-untyped-def]
        self.dsn.append(dsn)
        self.writers.append(Writer(origin))
        return self.writers[-1]


class LocalSigningTests(SynchronousTestCase):
    def inject(self, origin: str, keys: dict | None = None, dsn: MessageDsn | None = None) -> tuple[object, Sink]:
        sink = Sink()
        writer = LocalSigningSink(sink, DKIMSigning(signing_keys() if keys is None else keys)).open_message(
            "alice@example.com", ["bob@example.org"], origin=origin, uid=1000, pid=7, dsn=dsn)
        for chunk in (MESSAGE[:20], MESSAGE[20:]):
            writer.write(chunk)
        self.assertEqual(self.successResultOf(writer.finish()), QueueReceipt(1, 2))
        return writer, sink

    def test_a_local_injection_is_signed(self) -> None:
        writer, sink = self.inject("by uid 1000")
        self.assertNotIsInstance(writer, Writer)  # spooled until signed
        data = sink.writers[0].data
        self.assertTrue(data.startswith(b"DKIM-Signature: "))
        self.assertTrue(data.endswith(MESSAGE))
        self.assertEqual(sink.writers[0].origin, "by uid 1000")
        self.assertEqual(verify_all(data), [True, True])

    def test_other_origins_and_no_keys_pass_straight_through(self) -> None:
        for origin, keys in (("from network", None), ("for bounce", None), ("by alias", None), ("by uid 1000", {})):
            writer, sink = self.inject(origin, keys)
            self.assertIs(writer, sink.writers[0], origin)
            self.assertEqual(sink.writers[0].data, MESSAGE, origin)

    def test_dsn_data_reaches_the_queue_signed_or_not(self) -> None:
        dsn = MessageDsn(ret="HDRS", envid="QQ314159")
        for origin, keys in (("by uid 1000", None), ("from network", None), ("by uid 1000", {})):
            _, sink = self.inject(origin, keys, dsn)
            self.assertEqual(sink.dsn, [{"dsn": dsn}], origin)
        _, sink = self.inject("by uid 1000")
        self.assertEqual(sink.dsn, [{}])  # no DSN data: the sink is called as before DSN existed


FORWARDED = (b"Delivered-To: alice@example.org\n"
             b"Received: from evil.example (203.0.113.9)\n  by mx.example.org with SMTP; 1 Jan 2027 00:00:00 -0000\n"
             b"From: CEO <ceo@example.com>\nTo: alice@example.org\nSubject: wire the money\n\npay now\n")


class ForwardedMailTests(SynchronousTestCase):
    """A delivery program re-injecting a message (|forward, fastforward, dot-forward, a list manager) as 'by uid N'."""

    def inject(self, message: bytes) -> bytes:
        sink = Sink()
        writer = LocalSigningSink(sink, DKIMSigning(signing_keys())).open_message(
            "", ["alice@gmail.example"], origin="by uid 1000", uid=1000, pid=7)
        writer.write(message)
        self.assertEqual(self.successResultOf(writer.finish()), QueueReceipt(1, 2))
        return sink.writers[0].data

    def test_forwarded_network_mail_is_not_signed(self) -> None:
        self.assertEqual(self.inject(FORWARDED), FORWARDED)

    def test_a_delivered_to_or_a_received_field_alone_is_enough(self) -> None:
        for extra in (b"Delivered-To: alice@example.org\n", b"delivered-to : alice@example.org\n",
                      b"Received: from x\n", b"RECEIVED:\n (pymta 7 invoked by uid 1000)\n",
                      b"X-Note: a\rReceived: from a bare CR\n"):
            message = MESSAGE.replace(b"Subject: hi\n", b"Subject: hi\n" + extra)
            self.assertEqual(self.inject(message), message, extra)

    def test_fresh_local_mail_is_signed(self) -> None:
        message = b"X-Received-Count: 1\nX-Delivered-To: no\n" + MESSAGE + b"Received: in the body\n"
        data = self.inject(message)
        self.assertTrue(data.startswith(b"DKIM-Signature: "))
        self.assertTrue(data.endswith(message))
        self.assertEqual(verify_all(data), [True, True])
