"""Tests for pymta.remote.danematch: certificate chains against TLSA records (RFC 7672's usages)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.serialization import Encoding
from twisted.trial.unittest import SynchronousTestCase

from pymta.remote.danematch import DANE_EE, DANE_TA, NO_MATCH, TLSARecord, association, check_chain, usable
from tests.remote.danecerts import issue

MX = "mx.example.test"


class AssociationTests(SynchronousTestCase):
    def test_selectors_and_matching_types(self) -> None:
        leaf = issue(MX)
        der = leaf.cert.public_bytes(Encoding.DER)
        self.assertEqual(association(leaf.cert, 0, 0), der)
        self.assertEqual(association(leaf.cert, 0, 1), hashlib.sha256(der).digest())
        self.assertEqual(association(leaf.cert, 0, 2), hashlib.sha512(der).digest())
        spki = association(leaf.cert, 1, 0)
        self.assertNotEqual(spki, der)
        self.assertEqual(association(leaf.cert, 1, 1), hashlib.sha256(spki).digest())

    def test_usable(self) -> None:
        self.assertTrue(usable(TLSARecord(3, 1, 1, b"x")))
        self.assertTrue(usable(TLSARecord(2, 0, 2, b"x")))
        for record in (TLSARecord(0, 1, 1, b"x"), TLSARecord(1, 1, 1, b"x"), TLSARecord(3, 2, 1, b"x"),
                       TLSARecord(3, 1, 3, b"x"), TLSARecord(4, 1, 1, b"x")):
            self.assertFalse(usable(record), record)


class DaneEETests(SynchronousTestCase):
    def test_every_selector_and_matching_type(self) -> None:
        leaf = issue(MX)
        for selector in (0, 1):
            for mtype in (0, 1, 2):
                self.assertIsNone(check_chain([leaf.cert], [leaf.record(DANE_EE, selector, mtype)], [MX]))

    def test_names_and_dates_not_checked(self) -> None:
        leaf = issue("somewhere.else.test", expired=True)
        self.assertIsNone(check_chain([leaf.cert], [leaf.record(DANE_EE)], [MX]))

    def test_mismatch(self) -> None:
        leaf, other = issue(MX), issue(MX)
        reason = check_chain([leaf.cert], [other.record(DANE_EE)], [MX])
        self.assertEqual(reason, NO_MATCH)

    def test_one_match_among_several(self) -> None:
        leaf, other = issue(MX), issue(MX)
        self.assertIsNone(check_chain([leaf.cert], [other.record(DANE_EE), leaf.record(DANE_EE, 0, 2)], [MX]))

    def test_pkix_usages_are_not_used(self) -> None:
        leaf = issue(MX)
        for usage in (0, 1):
            self.assertIsNotNone(check_chain([leaf.cert], [leaf.record(usage)], [MX]))


class DaneTATests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = issue("Test CA", ca=True)
        self.leaf = issue(MX, self.ca)

    def test_anchor_in_the_chain(self) -> None:
        for selector, mtype in ((0, 1), (1, 1), (1, 2), (0, 0)):
            record = self.ca.record(DANE_TA, selector, mtype)
            self.assertIsNone(check_chain([self.leaf.cert, self.ca.cert], [record], [MX, "example.test"]))

    def test_intermediate_anchor(self) -> None:
        intermediate = issue("Intermediate", self.ca, ca=True)
        leaf = issue(MX, intermediate)
        record = intermediate.record(DANE_TA)
        self.assertIsNone(check_chain([leaf.cert, intermediate.cert, self.ca.cert], [record], [MX]))

    def test_full_anchor_not_sent(self) -> None:
        record = self.ca.record(DANE_TA, 0, 0)
        self.assertIsNone(check_chain([self.leaf.cert], [record], [MX]))

    def test_anchor_key_not_sent(self) -> None:
        reason = check_chain([self.leaf.cert], [self.ca.record(DANE_TA)], [MX])
        self.assertEqual(reason, NO_MATCH)

    def test_the_server_name_is_checked(self) -> None:
        leaf = issue("other.example.test", self.ca)
        reason = check_chain([leaf.cert, self.ca.cert], [self.ca.record(DANE_TA)], [MX, "example.test"])
        self.assertEqual(reason, f"its certificate names none of {MX}, example.test")
        self.assertIsNone(check_chain([leaf.cert, self.ca.cert], [self.ca.record(DANE_TA)], [MX, "other.example.test"]))

    def test_the_chain_is_checked(self) -> None:
        stranger = issue("Other CA", ca=True)
        forged = issue(MX, stranger)
        reason = check_chain([forged.cert, self.ca.cert], [self.ca.record(DANE_TA)], [MX])
        self.assertIn("does not chain to the TLSA trust anchor", str(reason))

    def test_expired_server_certificate(self) -> None:
        leaf = issue(MX, self.ca, expired=True)
        reason = check_chain([leaf.cert, self.ca.cert], [self.ca.record(DANE_TA)], [MX])
        self.assertIn("expired", str(reason))

    def test_the_leaf_is_no_trust_anchor(self) -> None:
        reason = check_chain([self.leaf.cert, self.ca.cert], [self.leaf.record(DANE_TA)], [MX])
        self.assertEqual(reason, NO_MATCH)
