"""Tests for pymta.local.wire framing."""

from __future__ import annotations

import json

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


class AsJsonLoadsTests(unittest.SynchronousTestCase):
    """A record's data is read as json.loads reads it: the same records, the same refusals."""

    DATA = (b"{}", b'{"a":1}', b'{"\xc3\xa9":[1,null]}', b'{"\xed\xa0\x80":1}', b"\xef\xbb\xbf{}",
            '{"a":1}'.encode("utf-16-le"), '{"a":1}'.encode("utf-32-be"), b"{\x00}", b"{", b"{\xff}", b"x", b"[1]")

    def test_same_as_json_loads(self) -> None:
        for data in self.DATA:
            framed = b"%d:%s," % (len(data), data)
            try:
                expected = json.loads(data)
            except ValueError as e:
                with self.assertRaises(WireError) as caught:
                    RecordReader().feed(framed)
                self.assertEqual(str(caught.exception), f"bad JSON: {e}")
                continue
            if isinstance(expected, dict):
                self.assertEqual(RecordReader().feed(framed), [expected], data)
            else:
                self.assertRaises(WireError, RecordReader().feed, framed)

    @given(records)
    def test_any_record(self, record) -> None:
        data = encode_record(record)
        self.assertEqual(RecordReader().feed(data), [json.loads(data[data.index(b":") + 1 : -1])])
