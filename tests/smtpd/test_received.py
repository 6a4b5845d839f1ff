"""qmail's Received line layout and escaping."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.received import received_line

WHEN = 1_800_000_000


class ReceivedLine(SynchronousTestCase):
    def test_layout(self) -> None:
        self.assertEqual(
            received_line(remote_host="unknown", remote_ip="192.0.2.1", local_host="mx.example", helo="c.example", when=WHEN),
            b"Received: from unknown (HELO c.example) (192.0.2.1)\n  by mx.example with SMTP; 15 Jan 2027 08:00:00 -0000\n",
        )

    def test_helo_omitted(self) -> None:
        line = received_line(remote_host="C.example", remote_ip="1.2.3.4", local_host="mx", helo="c.EXAMPLE", when=WHEN)
        self.assertTrue(line.startswith(b"Received: from C.example (1.2.3.4)\n"))
        line = received_line(remote_host="unknown", remote_ip="1.2.3.4", local_host="mx", helo=None, when=WHEN)
        self.assertTrue(line.startswith(b"Received: from unknown (1.2.3.4)\n"))

    def test_escaping_info_tls_auth(self) -> None:
        line = received_line(
            remote_host="unknown",
            remote_ip="1.2.3.4",
            local_host="mx",
            helo="evil\ttext (x)\u00e9",
            remote_info="joe",
            tls=True,
            auth_user="ann b",
            when=WHEN,
        )
        self.assertEqual(
            line.split(b"\n")[:2],
            [b"Received: from unknown (HELO evil?text??x??) (joe@1.2.3.4) (AUTH ann?b)", b"  by mx with ESMTPSA; 15 Jan 2027 08:00:00 -0000"],
        )
