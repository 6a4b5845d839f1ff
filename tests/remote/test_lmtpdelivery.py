"""
LMTP delivery through the remote channel: control/lmtproutes, a scripted
LMTP server on a real unix socket (and on 127.0.0.1), per-recipient
results, kept connections, the route's concurrency limit.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.remote.channel import RemoteChannel
from pymta.remote.lmtpdelivery import TEXT_NO_LMTP_CONNECTION
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.lmtpserver import ScriptedLMTPFactory
from tests.waiting import eventually


class LMTPDeliveryTests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-lmtp-")  # short: a unix socket's path has ~100 bytes at most
        self.addCleanup(shutil.rmtree, self.base, True)
        self.socket = os.path.join(self.base, "lmtp")

    def server(self, **settings: object) -> ScriptedLMTPFactory:
        factory = ScriptedLMTPFactory(**settings)  # type: ignore[arg-type]
        listening = reactor.listenUNIX(self.socket, factory)
        self.addCleanup(listening.stopListening)
        return factory

    def channel(self, lmtproutes: str, idle_seconds: float = 3.0, **controls: str) -> tuple[RemoteChannel, str]:
        root = make_root(os.path.join(self.base, "root"), {"lmtproutes": lmtproutes, **controls})
        channel = RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=reactor,
                                is_own_address=lambda a: True, idle_seconds=idle_seconds)
        self.addCleanup(channel.stop)
        return channel, root

    @defer.inlineCallbacks
    def test_each_recipient_gets_its_own_result(self) -> defer.Generator:
        factory = self.server(unknown=(b"nobody@mail.test",), after_dot={b"full@mail.test": b"452 4.2.2 Quota"})
        channel, root = self.channel(f"mail.test:unix:{self.socket} recipients=3")
        results = yield channel.deliver(job(root, ["ann@mail.test", "nobody@mail.test", "full@mail.test"],
                                            b"Subject: hi\n\n.dot\n"))
        self.assertEqual([(r.status, r.text) for r in results], [
            (SUCCESS, f"{self.socket} accepted message.\nRemote host said: 250 2.0.0 <ann@mail.test> Saved\n"),
            (FAILURE, f"{self.socket} does not like recipient.\nRemote host said: 550 5.1.1 <nobody@mail.test> "
                      "User doesn't exist: nobody@mail.test\n"),
            (DEFERRAL, f"{self.socket} failed after I sent the message.\nRemote host said: 452 4.2.2 Quota\n"),
        ])
        [session] = factory.sessions
        self.assertEqual(session.commands[:2], [b"LHLO pymta.example", b"MAIL FROM:<alice@pymta.example> BODY=8BITMIME"])
        self.assertEqual(session.messages, [b"Subject: hi\n\n..dot\n"])  # as on the wire: dot-stuffed

    @defer.inlineCallbacks
    def test_one_recipient_a_transaction_by_default(self) -> defer.Generator:
        factory = self.server(unknown=(b"nobody@mail.test",))
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        results = yield channel.deliver(job(root, ["ann@mail.test", "nobody@mail.test", "bob@mail.test"]))
        self.assertEqual([r.status for r in results], [SUCCESS, FAILURE, SUCCESS])
        [session] = factory.sessions  # over one connection
        self.assertEqual([c for c in session.commands if c.startswith((b"RCPT", b"RSET"))], [
            b"RCPT TO:<ann@mail.test>", b"RSET", b"RCPT TO:<nobody@mail.test>", b"RSET", b"RCPT TO:<bob@mail.test>"])
        self.assertEqual(len(session.messages), 2)

    @defer.inlineCallbacks
    def test_no_connection_is_tried_again_for_the_next_recipient(self) -> defer.Generator:
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        tried: list = []
        connect = channel.lmtp._endpoint
        channel.lmtp._endpoint = lambda *args: tried.append(args) or connect(*args)  # type: ignore[method-assign]
        results = yield channel.deliver(job(root, ["ann@mail.test", "bob@mail.test"]))
        self.assertEqual([r.text for r in results], [TEXT_NO_LMTP_CONNECTION] * 2)
        self.assertEqual(len(tried), 1)

    @defer.inlineCallbacks
    def test_lmtproutes_wins_over_smtproutes_and_qmtproutes(self) -> defer.Generator:
        factory = self.server()
        channel, root = self.channel(f".mail.test:unix:{self.socket}", smtproutes="a.mail.test:127.0.0.1:1",
                                     qmtproutes="a.mail.test:127.0.0.1:1")
        results = yield channel.deliver(job(root, ["ann@a.mail.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertEqual(len(factory.sessions), 1)

    @defer.inlineCallbacks
    def test_kept_connection_is_reused_with_rset(self) -> defer.Generator:
        factory = self.server()
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        first = yield channel.deliver(job(root, ["ann@mail.test"], b"one\n", message_id=1))
        second = yield channel.deliver(job(root, ["bob@mail.test"], b"two\n", message_id=2))
        self.assertEqual([first[0].status, second[0].status], [SUCCESS, SUCCESS])
        [session] = factory.sessions
        self.assertEqual(session.messages, [b"one\n", b"two\n"])
        self.assertEqual(session.commands[4:6], [b"RSET", b"MAIL FROM:<alice@pymta.example> BODY=8BITMIME"])

    @defer.inlineCallbacks
    def test_connection_closed_by_server_is_replaced(self) -> defer.Generator:
        factory = self.server(close_after_dot=True)
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        yield channel.deliver(job(root, ["ann@mail.test"], message_id=1))
        yield eventually(lambda: factory.open == 0, what="the server's close")
        results = yield channel.deliver(job(root, ["bob@mail.test"], message_id=2))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertEqual([len(s.messages) for s in factory.sessions], [1, 1])

    @defer.inlineCallbacks
    def test_concurrency_limit_of_the_route(self) -> defer.Generator:
        factory = self.server()
        channel, root = self.channel(f"mail.test:unix:{self.socket} concurrency=2")
        results = yield defer.gatherResults(
            [channel.deliver(job(root, [f"r{i}@mail.test"], message_id=i)) for i in range(6)])
        self.assertEqual([r[0].status for r in results], [SUCCESS] * 6)
        self.assertEqual(factory.most_open, 2)
        self.assertEqual(sum(len(s.messages) for s in factory.sessions), 6)
        self.assertEqual(len(factory.sessions), 2)  # the connections were kept and reused

    @defer.inlineCallbacks
    def test_idle_connection_ends_after_idle_seconds(self) -> defer.Generator:
        factory = self.server()
        channel, root = self.channel(f"mail.test:unix:{self.socket}", idle_seconds=0.1)
        yield channel.deliver(job(root, ["ann@mail.test"]))
        yield eventually(lambda: factory.sessions[0].commands[-1] == b"QUIT", what="the idle connection's QUIT")

    @defer.inlineCallbacks
    def test_stop_ends_kept_connections(self) -> defer.Generator:
        factory = self.server()
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        yield channel.deliver(job(root, ["ann@mail.test"]))
        yield channel.stop()
        yield eventually(lambda: factory.open == 0, what="the kept connection's end")
        self.assertEqual(factory.sessions[0].commands[-1], b"QUIT")
        results = yield channel.deliver(job(root, ["bob@mail.test"]))
        self.assertEqual(results[0].status, DEFERRAL)

    @defer.inlineCallbacks
    def test_server_down_is_a_deferral(self) -> defer.Generator:
        channel, root = self.channel(f"mail.test:unix:{self.socket}")
        results = yield channel.deliver(job(root, ["ann@mail.test", "bob@mail.test"]))
        self.assertEqual([(r.status, r.text) for r in results], [(DEFERRAL, TEXT_NO_LMTP_CONNECTION)] * 2)

    @defer.inlineCallbacks
    def test_over_tcp(self) -> defer.Generator:
        factory = ScriptedLMTPFactory(unknown=(b"nobody@mail.test",))
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        channel, root = self.channel(f"mail.test:127.0.0.1:{port}")
        results = yield channel.deliver(job(root, ["ann@mail.test", "nobody@mail.test"]))
        self.assertEqual([r.status for r in results], [SUCCESS, FAILURE])
        self.assertTrue(results[0].text.startswith("127.0.0.1 accepted message.\n"), results[0].text)
        yield listening.stopListening()
        refused = yield channel.deliver(job(root, ["bob@mail.test"], message_id=2))
        self.assertEqual(refused[0].status, SUCCESS)  # the kept connection outlives the listener
