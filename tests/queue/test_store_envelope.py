"""Tests for pymta.queue.envelope: qmail's queue record formats."""

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.queue.envelope import (
    BAD_ADDRESS_TEXT,
    Envelope,
    EnvelopeError,
    RecipientRecord,
    check_address,
    encode_info,
    encode_qq_envelope,
    encode_recipients,
    encode_todo,
    parse_info,
    parse_qq_envelope,
    parse_recipients,
    parse_todo,
)
from pymta.queue.errors import QueueFailure

# any address pymta accepts: no NUL, no LF, at most 1000 bytes once encoded
address = st.text(st.characters(blacklist_characters="\0\n", blacklist_categories=("Cs",)), max_size=60) | st.binary(
    max_size=40
).filter(lambda b: b"\0" not in b and b"\n" not in b).map(lambda b: b.decode("utf-8", "surrogateescape"))


class TodoFormatTests(unittest.SynchronousTestCase):
    def test_exact_bytes(self) -> None:
        data = encode_todo(1000, 2179544, "me@test.example", ["a@x.example", "b@y.example"])
        self.assertEqual(data, b"u1000\0p2179544\0Fme@test.example\0Ta@x.example\0Tb@y.example\0")

    def test_parse(self) -> None:
        env = parse_todo(b"u0\0p77\0F\0Tpostmaster\0")
        self.assertEqual(env, Envelope(0, 77, "", ("postmaster",)))

    def test_no_recipients(self) -> None:
        self.assertEqual(parse_todo(encode_todo(5, 6, "s@x", [])).recipients, ())

    def test_truncated(self) -> None:
        self.assertRaises(EnvelopeError, parse_todo, b"u0\0p77\0Fa@b\0Tc@")

    def test_empty(self) -> None:
        self.assertRaises(EnvelopeError, parse_todo, b"")

    def test_recipient_before_sender(self) -> None:
        self.assertRaises(EnvelopeError, parse_todo, b"u0\0p1\0Ta@b\0Fc@d\0")

    def test_unknown_record(self) -> None:
        self.assertRaises(EnvelopeError, parse_todo, b"u0\0p1\0Fa@b\0Xc@d\0")

    def test_bad_number(self) -> None:
        self.assertRaises(EnvelopeError, parse_todo, b"uroot\0p1\0Fa@b\0")

    def test_eight_bit_round_trip(self) -> None:
        sender = b"j\xf6rg@example.org".decode("utf-8", "surrogateescape")
        data = encode_todo(1, 2, sender, ["r\u00e9@x"])
        self.assertIn(b"Fj\xf6rg@example.org\0", data)
        self.assertEqual(parse_todo(data).sender, sender)
        self.assertEqual(parse_todo(data).recipients, ("r\u00e9@x",))

    @given(st.integers(0, 2**32), st.integers(0, 2**32), address, st.lists(address, max_size=5))
    def test_round_trip(self, uid, pid, sender, recipients) -> None:
        self.assertEqual(parse_todo(encode_todo(uid, pid, sender, recipients)), Envelope(uid, pid, sender, tuple(recipients)))

    @given(st.binary(max_size=200))
    def test_parse_never_crashes(self, data) -> None:
        try:
            env = parse_todo(data)
        except EnvelopeError:
            return
        self.assertIsInstance(env, Envelope)


class AddressCheckTests(unittest.SynchronousTestCase):
    def test_nul_refused(self) -> None:
        e = self.assertRaises(QueueFailure, check_address, "a\0b@x")
        self.assertTrue(e.permanent)
        self.assertEqual(e.text, BAD_ADDRESS_TEXT)

    def test_newline_refused(self) -> None:
        e = self.assertRaises(QueueFailure, encode_todo, 0, 0, "a@x", ["b\n@x"])
        self.assertTrue(e.permanent)

    def test_too_long(self) -> None:
        e = self.assertRaises(QueueFailure, check_address, "a" * 990 + "@example.com")
        self.assertEqual(e.text, "envelope address too long for qq (#5.1.3)")
        self.assertTrue(e.permanent)
        self.assertEqual(e.exit_code, 11)

    def test_limit_is_bytes(self) -> None:
        self.assertEqual(len(check_address("a" * 1000)), 1000)
        self.assertRaises(QueueFailure, check_address, "\u00e9" * 501)


class InfoAndChannelTests(unittest.SynchronousTestCase):
    def test_info(self) -> None:
        self.assertEqual(encode_info("s@x"), b"Fs@x\0")
        self.assertEqual(parse_info(b"F\0"), "")
        self.assertRaises(EnvelopeError, parse_info, b"Ts@x\0")
        self.assertRaises(EnvelopeError, parse_info, b"Fs@x")

    def test_recipients_with_offsets(self) -> None:
        data = encode_recipients(["a@x", "bb@y"])
        self.assertEqual(data, b"Ta@x\0Tbb@y\0")
        data = data[:5] + b"D" + data[6:]
        self.assertEqual(
            parse_recipients(data),
            [RecipientRecord(0, False, "a@x"), RecipientRecord(5, True, "bb@y")],
        )

    def test_recipients_bad(self) -> None:
        self.assertRaises(EnvelopeError, parse_recipients, b"Ta@x\0Xb\0")
        self.assertRaises(EnvelopeError, parse_recipients, b"Ta@x\0Tb")

    @given(st.lists(address, max_size=6), st.data())
    def test_recipients_round_trip(self, recipients, data) -> None:
        raw = bytearray(encode_recipients(recipients))
        records = parse_recipients(bytes(raw))
        self.assertEqual([r.address for r in records], recipients)
        done = [data.draw(st.booleans()) for _ in records]
        for rec, flag in zip(records, done):
            self.assertEqual(raw[rec.offset], ord("T"))
            if flag:
                raw[rec.offset] = ord("D")
        self.assertEqual([r.done for r in parse_recipients(bytes(raw))], done)


class QmailQueueEnvelopeTests(unittest.SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_qq_envelope(b"Fa@x\0Tb@y\0Tc@z\0\0"), ("a@x", ["b@y", "c@z"]))

    def test_no_recipients(self) -> None:
        self.assertEqual(parse_qq_envelope(b"F\0\0"), ("", []))

    def test_missing_final_nul(self) -> None:
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"Fa@x\0Tb@y\0").exit_code, 54)
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"Fa@x\0Tb@").exit_code, 54)
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"").exit_code, 54)

    def test_bad_records(self) -> None:
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"Ta@x\0\0").exit_code, 91)
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"Fa@x\0Fb@y\0\0").exit_code, 91)
        self.assertEqual(self.assertRaises(QueueFailure, parse_qq_envelope, b"\0").exit_code, 91)

    def test_long_address(self) -> None:
        e = self.assertRaises(QueueFailure, parse_qq_envelope, b"F" + b"a" * 1001 + b"\0\0")
        self.assertEqual(e.exit_code, 11)

    @given(address, st.lists(address, max_size=5))
    def test_round_trip(self, sender, recipients) -> None:
        self.assertEqual(parse_qq_envelope(encode_qq_envelope(sender, recipients)), (sender, recipients))

    @given(st.binary(max_size=100))
    def test_parse_never_crashes(self, data) -> None:
        try:
            parse_qq_envelope(data)
        except QueueFailure as e:
            self.assertIn(e.exit_code, (11, 54, 91))


class TodoDsnRecordTests(unittest.SynchronousTestCase):
    """pymta's own DSN records in todo/ (docs/internals.md, "DSN data in the queue")."""

    def test_exact_bytes(self) -> None:
        from pymta.dsn.params import MessageDsn, RecipientDsn

        dsn = MessageDsn("HDRS", "id1", (RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;o@x"), RecipientDsn()))
        data = encode_todo(1, 2, "s@x", ["a@x", "b@x"], dsn)
        self.assertEqual(data, b"u1\0p2\0Fs@x\0RHDRS\0Eid1\0Ta@x\0NSUCCESS,FAILURE\0Orfc822;o@x\0Tb@x\0")
        self.assertEqual(parse_todo(data), Envelope(1, 2, "s@x", ("a@x", "b@x"), dsn))

    def test_plain_dsn_writes_nothing(self) -> None:
        from pymta.dsn.params import MessageDsn, RecipientDsn

        plain = MessageDsn(recipients=(RecipientDsn(),))
        self.assertEqual(encode_todo(1, 2, "s@x", ["a@x"], plain), encode_todo(1, 2, "s@x", ["a@x"]))
        self.assertIsNone(parse_todo(encode_todo(1, 2, "s@x", ["a@x"])).dsn)

    def test_bad_records(self) -> None:
        for data in (b"u1\0p2\0Fs@x\0NNEVER\0Ta@x\0",  # N before any T
                     b"u1\0p2\0Fs@x\0Ta@x\0NNEVER\0NNEVER\0",
                     b"u1\0p2\0Fs@x\0RALL\0Ta@x\0",
                     b"u1\0p2\0Fs@x\0Ta@x\0Oa@b\0",
                     b"u1\0p2\0Fs@x\0Eid\0Eid\0Ta@x\0"):
            self.assertRaises(EnvelopeError, parse_todo, data)
