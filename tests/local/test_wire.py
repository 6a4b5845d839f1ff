"""Tests for pymta.local.wire framing."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.local.wire import RecordReader, WireError, encode_record

records = st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=30), st.none()), max_size=4)


class WireTests(unittest.SynchronousTestCase):
    @given(st.lists(records, max_size=5), st.integers(min_value=1, max_value=7))
    def test_roundtrip_any_split(self, items, step) -> None:
        data = b"".join(encode_record(r) for r in items)
        reader = RecordReader()
        out = []
        for i in range(0, len(data), step):
            out.extend(reader.feed(data[i : i + step]))
        self.assertEqual(out, items)
        self.assertEqual(reader.pending, 0)

    def test_garbage(self) -> None:
        for data in (b"x:", b"3:abc;", b"5:[1,2],", b"2:{}x", b"99999999999999:"):
            self.assertRaises(WireError, RecordReader().feed, data)
        self.assertRaises(WireError, RecordReader(limit=10).feed, b"11:")

    def test_surrogates_survive(self) -> None:
        record = {"recipient": "a\udcffb@c"}
        self.assertEqual(RecordReader().feed(encode_record(record)), [record])
