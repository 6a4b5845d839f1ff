"""pymta.milter.negotiation: the offer, and the filter's answer honoured within it."""

from __future__ import annotations

import struct

from twisted.trial import unittest

from pymta.milter import negotiation as n
from pymta.milter.wire import PacketReader, ProtocolError


def answer(version: int, actions: int, steps: int, extra: bytes = b"") -> bytes:
    return struct.pack(">III", version, actions, steps) + extra


class NegotiationTests(unittest.TestCase):
    def test_offer(self) -> None:
        [(command, data)] = PacketReader().feed(n.offer_packet())
        self.assertEqual(command, b"O")
        version, actions, steps = struct.unpack(">III", data)
        self.assertEqual((version, actions), (6, 0x1FF))
        self.assertTrue(steps & n.SMFIP_SKIP and steps & n.SMFIP_NR_BODY and steps & n.SMFIP_HDR_LEADSPC)
        self.assertFalse(steps & n.SMFIP_RCPT_REJ)

    def test_steps_honoured(self) -> None:
        got = n.parse_negotiation(b"O", answer(6, n.SMFIF_ADDHDRS, n.SMFIP_NOHELO | n.SMFIP_NR_RCPT | n.SMFIP_NOBODY))
        self.assertFalse(got.sends("helo"))
        self.assertTrue(got.sends("rcpt"))
        self.assertFalse(got.answers("rcpt"))
        self.assertTrue(got.answers("mail"))
        self.assertFalse(got.sends("body"))
        self.assertTrue(got.may(n.SMFIF_ADDHDRS))
        self.assertFalse(got.may(n.SMFIF_CHGBODY))

    def test_not_offered_is_dropped(self) -> None:
        got = n.parse_negotiation(b"O", answer(6, 0x1000 | n.SMFIF_ADDRCPT, n.SMFIP_RCPT_REJ | n.SMFIP_NOCONNECT))
        self.assertEqual(got.actions, n.SMFIF_ADDRCPT)
        self.assertEqual(got.steps, n.SMFIP_NOCONNECT)
        self.assertEqual(got.dropped, (0x1000, n.SMFIP_RCPT_REJ))

    def test_symlists(self) -> None:
        extra = struct.pack(">I", 2) + b"{mail_addr} i\0" + struct.pack(">I", 0) + b"j client_addr\0"
        got = n.parse_negotiation(b"O", answer(6, n.SMFIF_SETSYMLIST, 0, extra))
        self.assertEqual(dict(got.symlists), {"mail": ("{mail_addr}", "i"), "connect": ("j", "{client_addr}")})
        self.assertEqual(n.parse_negotiation(b"O", answer(6, 0, 0, extra)).symlists, {})

    def test_old_versions(self) -> None:
        got = n.parse_negotiation(b"O", answer(2, n.SMFIF_ADDHDRS, n.SMFIP_NR_MAIL))
        self.assertFalse(got.sends("data"))
        self.assertTrue(got.answers("mail"))

    def test_refused(self) -> None:
        self.assertRaises(ProtocolError, n.parse_negotiation, b"c", answer(6, 0, 0))
        self.assertRaises(ProtocolError, n.parse_negotiation, b"O", b"\0\0\0\x06")
        self.assertRaises(ProtocolError, n.parse_negotiation, b"O", answer(7, 0, 0))
        self.assertRaises(ProtocolError, n.parse_negotiation, b"O", answer(1, 0, 0))
        self.assertRaises(ProtocolError, n.parse_negotiation, b"O", answer(6, 0x100, 0, struct.pack(">I", 9) + b"i\0"))
        self.assertRaises(ProtocolError, n.parse_negotiation, b"O", answer(6, 0x100, 0, struct.pack(">I", 1) + b"i"))
