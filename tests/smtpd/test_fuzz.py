"""Arbitrary client bytes never crash a session: every reply is a coded line, nothing is logged as an error."""

from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.context import ListenerSettings
from tests.smtpd.helpers import MemorySink, Session, make_root

WORDS = [
    b"HELO x", b"EHLO x", b"MAIL FROM:<a@b>", b"RCPT TO:<c@d>", b"DATA", b".", b"RSET", b"NOOP", b"QUIT",
    b"STARTTLS", b"AUTH PLAIN", b"AUTH LOGIN", b"*", b"VRFY x", b"..", b"\x00", b"\xff\xfe", b"MAIL FROM:<", b"SIZE=x",
]
REPLY = re.compile(r"^[2-5]\d\d[ -]")

pieces = st.one_of(
    st.sampled_from(WORDS),
    st.binary(max_size=40),
    st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n.\r\n", b"\n.\n"]),
)


class Fuzz(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(pieces, max_size=40), st.integers(min_value=1, max_value=17), st.booleans())
    def test_any_input(self, parts: list[bytes], chunk: int, submission: bool) -> None:
        root = make_root(self.mktemp())
        s = Session(root, sink=MemorySink(), tls_transport=True, settings=ListenerSettings(submission=submission),
                    auth_failure_delay=0, max_command_line=64, max_data_line=128)
        data = b"".join(p + (b"\r\n" if i % 3 == 0 else b"") for i, p in enumerate(parts))
        for i in range(0, len(data), chunk):
            s.proto.dataReceived(data[i : i + chunk])
        s.clock.advance(2000)
        for line in s.take():
            self.assertRegex(line, REPLY)
        s.close()
        self.assertEqual(self.flushLoggedErrors(), [])
