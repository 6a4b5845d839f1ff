"""
The null client's QMQP hand-over (L{pymta.qmqpclient}, L{pymta.qmqpservers},
L{pymta.queue.client.enqueue} on a root with control/qmqpservers), against
small QMQP servers on 127.0.0.1 written here.
"""

from __future__ import annotations

import io
import os
import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.qmqpclient import EXIT_CONNECT_REFUSED, EXIT_CONNECTION_DROPPED, encode_envelope, send_qmqp
from pymta.qmqpservers import QMQPServer, qmqp_servers, server_of
from pymta.queue.client import enqueue
from pymta.queue.errors import EXIT_CONFIG, QueueFailure
from pymta.queue.framing import NetstringParser, netstring, split_netstrings


class FakeServer:
    """A QMQP server on 127.0.0.1: reads one packet, records it, answers C{reply} (None: closes without one)."""

    def __init__(self, test: SynchronousTestCase, reply: bytes | None) -> None:
        self.reply = reply
        self.packets: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    @property
    def server(self) -> QMQPServer:
        return QMQPServer("127.0.0.1", self.port)

    def serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            parser = NetstringParser(10**8)
            while (packet := parser.next()) is None:
                data = conn.recv(65536)
                if not data:
                    return
                parser.feed(data)
            self.packets.append(packet)
            if self.reply is not None:
                conn.sendall(netstring(self.reply))

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread (close alone does not)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


def closed_port() -> QMQPServer:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return QMQPServer("127.0.0.1", s.getsockname()[1])


class SendTests(SynchronousTestCase):
    def test_k_is_a_receipt_and_the_packet_is_qmqp(self) -> None:
        far = FakeServer(self, b"Kok 1800000000 qp 77")
        receipt = send_qmqp([far.server], io.BytesIO(b"Subject: x\n\nbody\n"), "a@app.example", ["b@x.example", "c@y.example"])
        self.assertEqual(receipt.qp, 77)
        far.thread.join(10)
        [packet] = far.packets
        self.assertEqual(split_netstrings(packet), [b"Subject: x\n\nbody\n", b"a@app.example", b"b@x.example", b"c@y.example"])
        self.assertEqual(encode_envelope("", ["r@x"]), b"0:,3:r@x,")

    def test_servers_that_do_not_answer_are_skipped_in_order(self) -> None:
        silent = FakeServer(self, None)  # takes the message, closes without a reply
        good = FakeServer(self, b"Kok 1 qp 2")
        receipt = send_qmqp([closed_port(), silent.server, good.server], b"m\n", "", ["b@x.example"])
        self.assertEqual(receipt.qp, 2)
        good.thread.join(10)
        self.assertEqual(split_netstrings(good.packets[0])[0], b"m\n")  # the whole message, sent again

    def test_the_first_reply_decides(self) -> None:
        for reply, permanent in ((b"Zdisk full (#4.3.0)", False), (b"Dno such thing (#5.1.1)", True)):
            first = FakeServer(self, reply)
            second = FakeServer(self, b"Kok 1 qp 2")
            e = self.assertRaises(QueueFailure, send_qmqp, [first.server, second.server], b"m\n", "", ["b@x.example"])
            self.assertEqual((e.text, e.permanent), (reply[1:].decode(), permanent))
            second.stop()
            self.assertEqual(second.packets, [])

    def test_no_server_answering_is_temporary(self) -> None:
        e = self.assertRaises(QueueFailure, send_qmqp, [closed_port(), closed_port()], b"m\n", "", ["b@x.example"])
        self.assertEqual((e.exit_code, e.permanent), (EXIT_CONNECT_REFUSED, False))
        self.assertEqual(e.text, "connection to mail server rejected (#4.4.1)")
        silent = FakeServer(self, None)
        e = self.assertRaises(QueueFailure, send_qmqp, [silent.server], b"m\n", "", ["b@x.example"])
        self.assertEqual((e.exit_code, e.permanent), (EXIT_CONNECTION_DROPPED, False))

    def test_a_server_that_stays_silent_times_out(self) -> None:
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts (the kernel does), never answers
        server = QMQPServer("127.0.0.1", listener.getsockname()[1])
        e = self.assertRaises(QueueFailure, send_qmqp, [server], b"m\n", "", ["b@x.example"], io_timeout=0.2)
        self.assertEqual((e.exit_code, e.permanent), (EXIT_CONNECTION_DROPPED, False))


class ServersFileTests(SynchronousTestCase):
    def root(self, text: str | None) -> str:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        if text is not None:
            with open(os.path.join(root, "control", "qmqpservers"), "w") as f:
                f.write(text)
        return root

    def test_entries(self) -> None:
        servers = qmqp_servers(load_controls(self.root("# central\n192.0.2.1\n192.0.2.2:7628\n2001:db8::1\n[2001:db8::2]:99\n[IPv6:::1]\n")))
        self.assertEqual(servers, (QMQPServer("192.0.2.1"), QMQPServer("192.0.2.2", 7628), QMQPServer("2001:db8::1"),
                                   QMQPServer("2001:db8::2", 99), QMQPServer("::1")))
        self.assertEqual(str(servers[3]), "[2001:db8::2]:99")
        self.assertEqual(qmqp_servers(load_controls(self.root(None))), ())
        self.assertRaises(ControlError, load_controls, self.root("qmqp.example\n"))
        self.assertEqual(server_of("192.0.2.9:1"), QMQPServer("192.0.2.9", 1))

    def test_enqueue_on_a_null_client_goes_to_the_server(self) -> None:
        far = FakeServer(self, b"Kok 1 qp 9")
        root = self.root(f"{far.server}\n")  # no queue, no inject socket
        receipt = enqueue(root, b"Subject: x\n\nnull client\n", "a@app.example", ["b@x.example"])
        self.assertEqual(receipt.qp, 9)
        far.thread.join(10)
        self.assertEqual(split_netstrings(far.packets[0])[0], b"Subject: x\n\nnull client\n")

    def test_enqueue_on_a_null_client_without_servers(self) -> None:
        e = self.assertRaises(QueueFailure, enqueue, self.root("# none yet\n"), b"m\n", "", ["b@x.example"])
        self.assertEqual((e.exit_code, e.permanent), (EXIT_CONFIG, False))
        e = self.assertRaises(QueueFailure, enqueue, self.root(f"{closed_port()}\n"), b"m\n", "", ["b@x.example"])
        self.assertEqual((e.exit_code, e.permanent), (EXIT_CONNECT_REFUSED, False))
