"""Tests for the inject socket: pymta.queue.framing, pymta.queue.injectserver and pymta.queue.injectclient."""

import os
import shutil
import tempfile

from hypothesis import given, strategies as st
from twisted.internet import defer, reactor, threads
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue import client
from pymta.queue.envelope import parse_todo
from pymta.queue.framing import (
    FramingError,
    NetstringParser,
    encode_envelope,
    encode_reply,
    inject_socket_path,
    netstring,
    parse_envelope_dsn,
    parse_reply,
)
from pymta.queue.injectclient import InjectClientSink
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue
from tests.queue.test_store import ImmediateReactor, ImmediateThreadPool, files_under


class FramingTests(unittest.SynchronousTestCase):
    def test_netstring(self) -> None:
        self.assertEqual(netstring(b"abc"), b"3:abc,")
        self.assertEqual(netstring(b""), b"0:,")

    def test_parser_incremental(self) -> None:
        p = NetstringParser(100)
        out = []
        for byte in b"3:abc,0:,5:hello,":
            p.feed(bytes([byte]))
            v = p.next()
            if v is not None:
                out.append(v)
        self.assertEqual(out, [b"abc", b"", b"hello"])

    def test_parser_errors(self) -> None:
        for bad in (b"x:", b"3:abcd", b"01:a,", b"99999999999", b"-1:"):
            p = NetstringParser(100)
            p.feed(bad)
            self.assertRaises(FramingError, p.next)
        p = NetstringParser(2)
        p.feed(b"3:")
        self.assertRaises(FramingError, p.next)

    def test_envelope_round_trip(self) -> None:
        self.assertEqual(parse_envelope_dsn(encode_envelope("", "a@b", ["c@d", "e@f"])[3:-1])[:3], ("", "a@b", ["c@d", "e@f"]))

    def test_envelope_needs_sender(self) -> None:
        self.assertRaises(FramingError, parse_envelope_dsn, netstring(b""))
        self.assertRaises(FramingError, parse_envelope_dsn, netstring(b"") + b"3:ab")

    def test_replies(self) -> None:
        self.assertEqual(encode_reply(QueueReceipt(12, 12)), b"9:K12 qp 12,")
        self.assertEqual(parse_reply(b"K12 qp 12"), QueueReceipt(12, 12))
        r = parse_reply(b"Dsorry (#5.1.3)")
        self.assertTrue(r.permanent)
        self.assertEqual(r.text, "sorry (#5.1.3)")
        self.assertFalse(parse_reply(b"Zqq write error or disk full (#4.3.0)").permanent)
        for bad in (b"", b"K", b"Kx qp 1", b"Q", b"Z"):
            self.assertRaises(FramingError, parse_reply, bad)

    @given(st.lists(st.binary(max_size=50), max_size=8), st.lists(st.integers(1, 40), min_size=1, max_size=10))
    def test_parser_any_split(self, strings, cuts) -> None:
        data = b"".join(netstring(v) for v in strings)
        p = NetstringParser(100)
        out, pos, i = [], 0, 0
        while pos < len(data):
            step = cuts[i % len(cuts)]
            p.feed(data[pos : pos + step])
            pos += step
            i += 1
            while (v := p.next()) is not None:
                out.append(v)
        self.assertEqual(out, strings)
        self.assertEqual(p.pending(), 0)

    @given(st.binary(max_size=60))
    def test_parser_garbage_never_crashes(self, data) -> None:
        p = NetstringParser(30)
        p.feed(data)
        try:
            while p.next() is not None:
                pass
        except FramingError:
            pass

    @given(st.text(max_size=20), st.text(max_size=30), st.lists(st.text(max_size=30), max_size=4))
    def test_envelope_property(self, origin, sender, recipients) -> None:
        data = encode_envelope(origin, sender, recipients)
        p = NetstringParser(len(data))
        p.feed(data)
        self.assertEqual(parse_envelope_dsn(p.next()), (origin, sender, recipients, None))


def message(sender: str, recipients, body: bytes, origin: str = "", chunk: int = 7) -> bytes:
    out = [encode_envelope(origin, sender, recipients)]
    out += [netstring(body[i : i + chunk]) for i in range(0, len(body), chunk)]
    out.append(b"0:,")
    return b"".join(out)


def read_replies(data: bytes) -> list:
    p = NetstringParser(10000)
    p.feed(data)
    out = []
    while True:
        v = p.next()
        if v is None:
            return out
        out.append(parse_reply(v))


class InjectServerTests(unittest.SynchronousTestCase):
    peer = (4321, 1000, 1000)

    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.join(self.mktemp(), "queue"))
        self.layout.create()
        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), ImmediateThreadPool())
        self.factory = InjectServerFactory(sink, trusted_uids=[77], credentials=lambda t: self.peer)

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.addCleanup(proto.setTimeout, None)
        return proto, transport

    def mess_of(self, receipt) -> bytes:
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            return f.read()

    def test_message_queued(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(message("a@b", ["c@d"], b"Subject: x\n\nhello world\n"))
        [receipt] = read_replies(transport.value())
        self.assertIsInstance(receipt, QueueReceipt)
        self.assertTrue(self.mess_of(receipt).startswith(b"Received: (pymta %d invoked by uid 1000); " % receipt.qp))
        self.assertTrue(self.mess_of(receipt).endswith(b"\nSubject: x\n\nhello world\n"))
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            env = parse_todo(f.read())
        self.assertEqual((env.uid, env.sender, env.recipients), (1000, "a@b", ("c@d",)))

    def test_byte_at_a_time_and_two_messages(self) -> None:
        proto, transport = self.connect()
        data = message("a@b", ["c@d"], b"one\n") + message("e@f", [], b"two\n")
        for i in range(len(data)):
            proto.dataReceived(data[i : i + 1])
        replies = read_replies(transport.value())
        self.assertEqual(len(replies), 2)
        self.assertTrue(all(isinstance(r, QueueReceipt) for r in replies))
        self.assertTrue(self.mess_of(replies[1]).endswith(b"\ntwo\n"))
        self.assertFalse(transport.disconnecting)

    def test_untrusted_origin_ignored(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(message("a@b", ["c@d"], b"x\n", origin="from network"))
        [receipt] = read_replies(transport.value())
        self.assertIn(b"invoked by uid 1000);", self.mess_of(receipt))

    def test_trusted_origin_granted(self) -> None:
        self.peer = (1, 77, 77)
        proto, transport = self.connect()
        proto.dataReceived(message("a@b", ["c@d"], b"x\n", origin="from network"))
        [receipt] = read_replies(transport.value())
        self.assertIn(b"invoked from network);", self.mess_of(receipt))

    def test_trusted_origin_must_be_known(self) -> None:
        self.peer = (1, 77, 77)
        proto, transport = self.connect()
        proto.dataReceived(message("a@b", ["c@d"], b"x\n", origin="from network); evil"))
        [receipt] = read_replies(transport.value())
        self.assertIn(b"invoked by uid 77);", self.mess_of(receipt))

    def test_bad_address_refused(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(message("a@b", ["c\0d"], b"x\n"))
        [refused] = read_replies(transport.value())
        self.assertIsInstance(refused, QueueRefused)
        self.assertTrue(refused.permanent)
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_bad_framing_closes_with_d(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(encode_envelope("", "a@b", ["c@d"]) + b"5:abc")
        proto.dataReceived(b"defX")
        [refused] = read_replies(transport.value())
        self.assertTrue(refused.permanent)
        self.assertIn("protocol violation", refused.text)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(files_under(self.layout, "mess"), [])
        proto.dataReceived(b"more junk")

    def test_garbage_first(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"HELO there\r\n")
        [refused] = read_replies(transport.value())
        self.assertTrue(refused.permanent)
        self.assertTrue(transport.disconnecting)

    def test_oversized_chunk_refused(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(encode_envelope("", "a@b", ["c@d"]) + b"99999999:")
        self.assertTrue(transport.disconnecting)

    def test_disconnect_mid_message_leaves_nothing(self) -> None:
        proto, transport = self.connect()
        # more than the writer keeps in memory, so the message file exists
        proto.dataReceived(encode_envelope("", "a@b", ["c@d"]) + netstring(b"partial\n" * 10000))
        self.assertEqual(len(files_under(self.layout, "mess")), 1)
        proto.connectionLost(None)
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.assertEqual(files_under(self.layout, "todo"), [])

    def test_no_credentials(self) -> None:
        self.factory.credentials = lambda t: None
        proto, transport = self.connect()
        [refused] = read_replies(transport.value())
        self.assertFalse(refused.permanent)
        self.assertTrue(transport.disconnecting)

    def test_timeout_aborts(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(encode_envelope("", "a@b", ["c@d"]) + netstring(b"partial"))
        proto.timeoutConnection()
        self.assertEqual(files_under(self.layout, "mess"), [])


class InjectSocketIntegrationTests(unittest.TestCase):
    """Real UNIX sockets: the server, the Twisted client sink, the blocking client."""

    def setUp(self) -> None:
        # a short root: AF_UNIX socket paths are limited to 107 bytes
        self.root = tempfile.mkdtemp(prefix="pymta-inj-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        self.committed = []
        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), reactor, on_commit=lambda message_id, *_: self.committed.append(message_id))
        d = listen_inject(reactor, self.root, InjectServerFactory(sink))

        def listening(port):
            self.port = port
            self.addCleanup(port.stopListening)

        return d.addCallback(listening)

    @defer.inlineCallbacks
    def test_client_sink(self):
        sink = InjectClientSink(reactor, inject_socket_path(self.root))
        w = sink.open_message("a@b", ["c@d"], origin="from network")
        body = b"Subject: big\n\n" + b"0123456789abcdef\n" * 20000
        for i in range(0, len(body), 1000):
            w.write(body[i : i + 1000])
        receipt = yield w.finish()
        self.assertEqual(self.committed, [receipt.message_id])
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n" + body))
        self.assertIn(b"invoked from network);", data.split(b"\n", 1)[0])
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            self.assertEqual(parse_todo(f.read()).uid, os.getuid())

    @defer.inlineCallbacks
    def test_client_sink_dsn_reaches_todo(self):
        from pymta.dsn.params import MessageDsn, RecipientDsn

        dsn = MessageDsn("HDRS", "e1", (RecipientDsn(("SUCCESS",), "rfc822;o@d"), RecipientDsn()))
        sink = InjectClientSink(reactor, inject_socket_path(self.root))
        w = sink.open_message("a@b", ["c@d", "e@f"], origin="from network", dsn=dsn)
        w.write(b"Subject: x\n\nhi\n")
        receipt = yield w.finish()
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            self.assertEqual(parse_todo(f.read()).dsn, dsn)

    @defer.inlineCallbacks
    def test_client_sink_refusal(self):
        sink = InjectClientSink(reactor, inject_socket_path(self.root))
        w = sink.open_message("a@b", ["x" * 1200], origin="from network")
        w.write(b"x")
        e = yield self.assertFailure(w.finish(), QueueRefused)
        self.assertTrue(e.permanent)
        self.assertEqual(e.text, "envelope address too long for qq (#5.1.3)")

    @defer.inlineCallbacks
    def test_client_sink_socket_down(self):
        sink = InjectClientSink(reactor, os.path.join(self.root, "run", "nothing.sock"))
        w = sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"x")
        e = yield self.assertFailure(w.finish(), QueueRefused)
        self.assertFalse(e.permanent)
        self.assertEqual(e.text, "qq trouble making network connection (#4.3.0)")

    @defer.inlineCallbacks
    def test_client_sink_abort(self):
        sink = InjectClientSink(reactor, inject_socket_path(self.root))
        w = sink.open_message("a@b", ["c@d"], origin="")
        w.write(b"some data")
        w.abort()
        yield deferLater(0.2)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.assertEqual(files_under(self.layout, "mess"), [])

    @defer.inlineCallbacks
    def test_blocking_client_uses_socket(self):
        receipt = yield threads.deferToThread(client.enqueue, self.root, b"Subject: t\n\nbody\n", "s@x", ["r@y"], "by alias")
        self.assertEqual(self.committed, [receipt.message_id])
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            self.assertIn(b"invoked by alias);", f.readline())

    @defer.inlineCallbacks
    def test_blocking_client_refused(self):
        e = yield self.assertFailure(
            threads.deferToThread(client.enqueue_socket, inject_socket_path(self.root), b"x", "s@x", ["r\n@y"]), QueueRefused
        )
        self.assertTrue(e.permanent)


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class EnvelopeDsnTests(unittest.TestCase):
    def test_round_trip(self) -> None:
        from pymta.dsn.params import MessageDsn, RecipientDsn
        from pymta.queue.framing import parse_envelope_dsn

        dsn = MessageDsn("FULL", None, (RecipientDsn(), RecipientDsn(("NEVER",))))
        p = NetstringParser(10000)
        p.feed(encode_envelope("", "a@b", ["c@d", "e@f"], dsn))
        self.assertEqual(parse_envelope_dsn(p.next() or b""), ("", "a@b", ["c@d", "e@f"], dsn))

    def test_bad_dsn_block(self) -> None:
        from pymta.queue.framing import parse_envelope_dsn

        inner = netstring(b"") + netstring(b"a@b") + netstring(b"c@d") + netstring(b"\0T\0T\0")
        self.assertRaises(FramingError, parse_envelope_dsn, inner)  # two T for one recipient
        inner = netstring(b"") + netstring(b"a@b") + netstring(b"c@d") + netstring(b"\0T\0Xno\0")
        self.assertRaises(FramingError, parse_envelope_dsn, inner)
