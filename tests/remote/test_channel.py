"""
Integration tests for pymta.remote.channel.RemoteChannel: real sockets on
127.0.0.x, scripted SMTP servers, a fake resolver.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from pymta.control import ControlError, load_controls
from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS, DeliveryJob, DeliveryResult
from pymta.remote.channel import TEXT_NO_CONNECTION, RemoteChannel
from pymta.remote.datastream import encode_message
from pymta.dns import DNSTemporaryError, NULL_MX
from pymta.remote.routes import TEXT_SELF_MX
from pymta.remote.tcpto import DeadHostMemory, tcpto_path
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import ScriptedServerFactory, listen
from tests.waiting import eventually

OK_TEXT = "127.0.0.1 accepted message.\nRemote host said: 250 ok 1234 qp 56\n"


class ChannelTestBase(unittest.TestCase):
    timeout = 30

    def server(self, interface: str = "127.0.0.1", port: int = 0, **settings: object) -> tuple[ScriptedServerFactory, int]:
        factory = ScriptedServerFactory(**settings)
        listening = listen(factory, interface, port)
        self.addCleanup(listening.stopListening)
        return factory, listening.getHost().port

    def channel(self, controls: dict[str, str], resolver: FakeResolver | None = None, own: set[str] | None = None) -> tuple[RemoteChannel, str]:
        root = make_root(self.mktemp(), controls)
        own_set = own or set()
        channel = RemoteChannel(
            root,
            reader(root),
            resolver=resolver or FakeResolver(),
            reactor=reactor,
            is_own_address=lambda a: a in own_set,
            shuffle=lambda hosts: None,
        )
        self.addCleanup(channel.stop)
        return channel, root

    def routed(self, port: int, **controls: str) -> tuple[RemoteChannel, str]:
        return self.channel({"smtproutes": f"example.test:127.0.0.1:{port}", **controls})


class ReplyClassTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_accepted(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        body = b"Subject: hi\n\n.leading dot\n8bit \xc3\xbc\n"
        results = yield channel.deliver(job(root, ["bob@example.test"], body))
        self.assertEqual(results, [DeliveryResult(SUCCESS, OK_TEXT)])
        [session] = factory.sessions
        self.assertEqual(session.commands[0], b"EHLO pymta.example")
        self.assertIn(b"MAIL FROM:<alice@pymta.example> BODY=8BITMIME", session.commands)
        self.assertIn(b"RCPT TO:<bob@example.test>", session.commands)
        self.assertEqual(session.data, [encode_message(body)])

    @defer.inlineCallbacks
    def test_bounce_sender_and_helohost(self) -> defer.Generator:
        factory, port = self.server(extensions=[])
        channel, root = self.routed(port, helohost="out.pymta.example")
        results = yield channel.deliver(job(root, ["bob@example.test"], sender=""))
        self.assertEqual(results[0].status, SUCCESS)
        commands = factory.sessions[0].commands
        self.assertEqual(commands[:2], [b"EHLO out.pymta.example", b"MAIL FROM:<>"])

    @defer.inlineCallbacks
    def test_mixed_recipients_in_one_transaction(self) -> defer.Generator:
        factory, port = self.server(
            rcpt_replies={"bad@example.test": b"550 no such user here\r\n", "tmp@example.test": b"451 try later\r\n"}
        )
        channel, root = self.routed(port)
        results = yield channel.deliver(job(root, ["a@example.test", "bad@example.test", "tmp@example.test"]))
        self.assertEqual(
            results,
            [
                DeliveryResult(SUCCESS, OK_TEXT),
                DeliveryResult(FAILURE, "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user here\n"),
                DeliveryResult(DEFERRAL, "127.0.0.1 does not like recipient.\nRemote host said: 451 try later\n"),
            ],
        )
        self.assertEqual(len(factory.sessions), 1)
        self.assertEqual(len(factory.sessions[0].data), 1)

    @defer.inlineCallbacks
    def test_all_recipients_refused(self) -> defer.Generator:
        factory, port = self.server(
            rcpt_replies={"bad@example.test": b"550 no such user here\r\n", "tmp@example.test": b"451 try later\r\n"}
        )
        channel, root = self.routed(port)
        results = yield channel.deliver(job(root, ["bad@example.test", "tmp@example.test"]))
        self.assertEqual(
            results,
            [
                DeliveryResult(
                    FAILURE,
                    "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user here\nGiving up on 127.0.0.1.\n",
                ),
                DeliveryResult(
                    DEFERRAL,
                    "127.0.0.1 does not like recipient.\nRemote host said: 451 try later\nGiving up on 127.0.0.1.\n",
                ),
            ],
        )
        self.assertEqual(factory.sessions[0].data, [])

    @defer.inlineCallbacks
    def check_reply(self, setting: str, reply: bytes, status: str, text: str) -> defer.Generator:
        factory, port = self.server(**{setting: reply})
        channel, root = self.routed(port)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(status, text)])
        return factory

    def test_mail_temporary(self) -> defer.Deferred:
        return self.check_reply("mail_reply", b"451 greylisted\r\n", DEFERRAL,
                                "Connected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 greylisted\n")

    def test_mail_permanent(self) -> defer.Deferred:
        return self.check_reply("mail_reply", b"553 go away\r\n", FAILURE,
                                "Connected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 go away\n")

    def test_data_permanent(self) -> defer.Deferred:
        return self.check_reply("data_reply", b"554 no data\r\n", FAILURE,
                                "127.0.0.1 failed on DATA command.\nRemote host said: 554 no data\n")

    def test_after_dot_temporary(self) -> defer.Deferred:
        return self.check_reply("dot_reply", b"452 disk full\r\n", DEFERRAL,
                                "127.0.0.1 failed after I sent the message.\nRemote host said: 452 disk full\n")

    def test_after_dot_permanent_multiline(self) -> defer.Deferred:
        return self.check_reply("dot_reply", b"554-spam\r\n554 really\r\n", FAILURE,
                                "127.0.0.1 failed after I sent the message.\nRemote host said: 554-spam\n554 really\n")

    def test_greeting_refused(self) -> defer.Deferred:
        return self.check_reply("greeting", b"554 no service\r\n", DEFERRAL,
                                "Connected to 127.0.0.1 but greeting failed.\nRemote host said: 554 no service\n")

    def test_garbage_greeting(self) -> defer.Deferred:
        return self.check_reply("greeting", b"hello there\r\n", DEFERRAL,
                                "Connected to 127.0.0.1 but greeting failed.\nRemote host said: hello there\n")

    def test_garbage_after_dot(self) -> defer.Deferred:
        return self.check_reply("dot_reply", b"\x00?!\r\n", DEFERRAL,
                                "127.0.0.1 failed after I sent the message.\nRemote host said: ??!\n")

    @defer.inlineCallbacks
    def test_ehlo_refused_falls_back_to_helo(self) -> defer.Generator:
        factory = yield self.check_reply("ehlo_refused", b"500 what?\r\n", SUCCESS, OK_TEXT)
        self.assertEqual(factory.sessions[0].commands[:2], [b"EHLO pymta.example", b"HELO pymta.example"])

    @defer.inlineCallbacks
    def test_server_closes_mid_data(self) -> defer.Generator:
        factory, port = self.server(close_in_data=True)
        channel, root = self.routed(port)
        body = b"".join(b"line %d of a long message\n" % i for i in range(100000))
        results = yield channel.deliver(job(root, ["bob@example.test"], body))
        [result] = results
        self.assertEqual(result.status, DEFERRAL)
        self.assertTrue(result.text.startswith("Connected to 127.0.0.1 but connection died."), result.text)
        self.assertTrue(result.text.endswith("(#4.4.2)\n"))

    @defer.inlineCallbacks
    def test_server_stops_reading_mid_data(self) -> defer.Generator:
        factory, port = self.server(stop_reading_in_data=True)
        channel, root = self.routed(port, timeoutremote="1")
        body = (b"y" * 1023 + b"\n") * 16 * 1024  # 16 MB: more than the socket buffers hold
        started = reactor.seconds()
        results = yield channel.deliver(job(root, ["bob@example.test"], body))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, "Connected to 127.0.0.1 but connection died. (#4.4.2)\n")])
        self.assertLess(reactor.seconds() - started, 10)

    @defer.inlineCallbacks
    def test_dot_stuffing_at_chunk_boundaries(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        body = b"x" * 16383 + b"\n.\n" + b"y" * 16382 + b"\n..\n" + b"z\r\n.\r\nend"
        results = yield channel.deliver(job(root, ["bob@example.test"], body))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertEqual(factory.sessions[0].data, [encode_message(body)])
        self.assertNotIn(b"", factory.sessions[0].commands)  # nothing stray after the final dot

    @defer.inlineCallbacks
    def test_unreadable_message(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        j = job(root, ["bob@example.test"])
        os.unlink(j.message_path)
        results = yield channel.deliver(j)
        self.assertEqual(results, [DeliveryResult(DEFERRAL, "Unable to read message. (#4.3.0)\n")])


class SeveralRecipientsTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_too_many_recipients_split_into_transactions(self) -> defer.Generator:
        factory, port = self.server(rcpt_limit=2)
        channel, root = self.routed(port)
        recipients = [f"r{i}@example.test" for i in range(5)]
        results = yield channel.deliver(job(root, recipients))
        self.assertEqual([r.status for r in results], [SUCCESS] * 5)
        [session] = factory.sessions  # the connection is kept for the further transactions
        rcpts = [[c for c in t if c.startswith(b"RCPT")] for t in session.transactions()]
        # pipelined: all five asked, two taken; then three asked, two taken; then the last
        self.assertEqual([len(r) for r in rcpts], [5, 3, 1])
        self.assertEqual(len(session.data), 3)

    @defer.inlineCallbacks
    def test_without_pipelining_or_reuse(self) -> defer.Generator:
        factory, port = self.server(extensions=[], rcpt_limit=1)
        root = make_root(self.mktemp(), {"smtproutes": f"example.test:127.0.0.1:{port}"})
        channel = RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=reactor, idle_seconds=0)
        self.addCleanup(channel.stop)
        results = yield channel.deliver(job(root, ["a@example.test", "b@example.test"]))
        self.assertEqual([r.status for r in results], [SUCCESS, SUCCESS])
        self.assertEqual(len(factory.sessions), 2)
        self.assertEqual(factory.sessions[0].commands[-1:], [b"QUIT"])


class ConnectionReuseTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_next_message_uses_kept_connection(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        first = yield channel.deliver(job(root, ["a@example.test"], b"one\n", message_id=1))
        second = yield channel.deliver(job(root, ["b@example.test"], b"two\n", message_id=2))
        self.assertEqual([first[0].status, second[0].status], [SUCCESS, SUCCESS])
        [session] = factory.sessions
        self.assertEqual(session.data, [b"one\r\n.\r\n", b"two\r\n.\r\n"])
        self.assertEqual(len(session.transactions()), 2)

    @defer.inlineCallbacks
    def test_concurrent_messages_use_separate_connections(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        results = yield defer.gatherResults(
            [channel.deliver(job(root, [f"r{i}@example.test"], message_id=i)) for i in range(3)]
        )
        self.assertEqual([r[0].status for r in results], [SUCCESS] * 3)
        self.assertEqual(len(factory.sessions), 3)

    @defer.inlineCallbacks
    def test_connection_closed_by_server_is_replaced(self) -> defer.Generator:
        factory, port = self.server(close_after_dot=True)
        channel, root = self.routed(port)
        first = yield channel.deliver(job(root, ["a@example.test"], message_id=1))
        yield eventually(lambda: channel._idle == {}, what="the channel to see the server's close")
        second = yield channel.deliver(job(root, ["b@example.test"], message_id=2))
        self.assertEqual([first[0].status, second[0].status], [SUCCESS, SUCCESS])
        self.assertEqual([len(s.data) for s in factory.sessions], [1, 1])

    @defer.inlineCallbacks
    def test_stale_connection_before_close_is_noticed(self) -> defer.Generator:
        # the server answers the dot, then refuses the next MAIL with 421 and closes
        factory, port = self.server(mail_reply_sequence=[b"250 ok\r\n", b"421 closing, idle too long\r\n"])
        channel, root = self.routed(port)
        yield channel.deliver(job(root, ["a@example.test"], message_id=1))
        results = yield channel.deliver(job(root, ["b@example.test"], message_id=2))
        # the 421 came on the kept connection; a new one was opened and used
        self.assertEqual(len(factory.sessions), 2)
        self.assertEqual(results[0].status, SUCCESS)

    @defer.inlineCallbacks
    def test_idle_connection_closed_after_idle_seconds(self) -> defer.Generator:
        factory, port = self.server()
        root = make_root(self.mktemp(), {"smtproutes": f"example.test:127.0.0.1:{port}"})
        channel = RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=reactor, idle_seconds=0.1)
        self.addCleanup(channel.stop)
        yield channel.deliver(job(root, ["a@example.test"]))
        self.assertNotEqual(factory.sessions[0].commands[-1], b"QUIT")  # kept open for now
        yield eventually(lambda: factory.sessions[0].commands[-1] == b"QUIT", what="the idle connection's QUIT")
        self.assertEqual(channel._idle, {})

    @defer.inlineCallbacks
    def test_domains_delivered_separately(self) -> defer.Generator:
        one, port1 = self.server()
        two, port2 = self.server()
        channel, root = self.channel({"smtproutes": f"one.test:127.0.0.1:{port1}\ntwo.test:127.0.0.1:{port2}"})
        results = yield channel.deliver(job(root, ["a@one.test", "b@two.test", "c@one.test"]))
        self.assertEqual([r.status for r in results], [SUCCESS] * 3)
        self.assertEqual([c for c in one.sessions[0].commands if c.startswith(b"RCPT")],
                         [b"RCPT TO:<a@one.test>", b"RCPT TO:<c@one.test>"])
        self.assertEqual(len(two.sessions), 1)


class RoutingTests(ChannelTestBase):
    def mx_setup(self, mx: object, hosts: dict) -> FakeResolver:
        return FakeResolver(mx={"example.test": mx}, hosts=hosts)

    @defer.inlineCallbacks
    def test_mx_preference_order(self) -> defer.Generator:
        first, port = self.server("127.0.0.2")
        second, _ = self.server("127.0.0.3", port)
        resolver = self.mx_setup([(20, "mx2.example.test"), (10, "mx1.example.test")],
                                 {"mx1.example.test": ["127.0.0.2"], "mx2.example.test": ["127.0.0.3"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertEqual((len(first.sessions), len(second.sessions)), (1, 0))

    @defer.inlineCallbacks
    def test_next_mx_on_refused_connection_and_greeting(self) -> defer.Generator:
        refusing, port = self.server("127.0.0.3", greeting=b"421 busy\r\n")
        good, _ = self.server("127.0.0.4", port)
        resolver = self.mx_setup(
            [(10, "down.example.test"), (20, "busy.example.test"), (30, "good.example.test")],
            {"down.example.test": ["127.0.0.2"], "busy.example.test": ["127.0.0.3"], "good.example.test": ["127.0.0.4"]},
        )
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(SUCCESS, OK_TEXT.replace("127.0.0.1", "127.0.0.4"))])
        self.assertEqual(len(refusing.sessions), 1)

    @defer.inlineCallbacks
    def test_all_hosts_unreachable(self) -> defer.Generator:
        _, port = self.server("127.0.0.3")
        resolver = self.mx_setup([(10, "down.example.test")], {"down.example.test": ["127.0.0.2"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, TEXT_NO_CONNECTION)])

    @defer.inlineCallbacks
    def test_last_greeting_refusal_reported(self) -> defer.Generator:
        _, port = self.server("127.0.0.3", greeting=b"421 busy\r\n")
        resolver = self.mx_setup([(10, "busy.example.test")], {"busy.example.test": ["127.0.0.3"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, "Connected to 127.0.0.3 but greeting failed.\nRemote host said: 421 busy\n")])

    @defer.inlineCallbacks
    def test_self_check_uses_lower_preferences_only(self) -> defer.Generator:
        backup, port = self.server("127.0.0.3")
        resolver = self.mx_setup([(10, "mx1.example.test"), (20, "me.example.test")],
                                 {"mx1.example.test": ["127.0.0.3"], "me.example.test": ["127.0.0.5"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver, own={"127.0.0.5"})
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)

    @defer.inlineCallbacks
    def test_self_as_best_mx_defers(self) -> defer.Generator:
        resolver = self.mx_setup([(10, "me.example.test"), (20, "mx2.example.test")],
                                 {"me.example.test": ["127.0.0.5"], "mx2.example.test": ["127.0.0.3"]})
        channel, root = self.channel({}, resolver, own={"127.0.0.5"})
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, TEXT_SELF_MX + "\n")])

    @defer.inlineCallbacks
    def test_loopback_target_never_loops(self) -> defer.Generator:
        root = make_root(self.mktemp())
        resolver = FakeResolver(mx={"example.test": [(10, "mx.example.test")]}, hosts={"mx.example.test": ["127.0.0.1"]})
        channel = RemoteChannel(root, reader(root), resolver=resolver, reactor=reactor)
        self.addCleanup(channel.stop)
        results = yield channel.deliver(job(root, ["bob@example.test", "x@[0.0.0.0]"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, TEXT_SELF_MX + "\n")] * 2)

    @defer.inlineCallbacks
    def test_dns_outcomes(self) -> defer.Generator:
        resolver = FakeResolver(
            mx={"null.test": [(0, NULL_MX)], "temp.test": DNSTemporaryError, "noaddr.test": [(10, "mx.noaddr.test")]},
            hosts={"mx.noaddr.test": []},
        )
        channel, root = self.channel({}, resolver)
        results = yield channel.deliver(job(root, ["a@null.test", "b@temp.test", "c@nxdomain.test", "d@noaddr.test"]))
        self.assertEqual(
            results,
            [
                DeliveryResult(FAILURE, "Sorry, null.test does not accept mail (null MX). (#5.1.10)\n"),
                DeliveryResult(DEFERRAL, "Sorry, I couldn't find any host by that name. (#4.1.2)\n"),
                DeliveryResult(FAILURE, "Sorry, I couldn't find any host named nxdomain.test. (#5.1.2)\n"),
                DeliveryResult(FAILURE, "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"),
            ],
        )

    @defer.inlineCallbacks
    def test_no_mx_uses_address(self) -> defer.Generator:
        factory, port = self.server("127.0.0.3")
        resolver = FakeResolver(mx={"example.test": []}, hosts={"example.test": ["127.0.0.3"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        # MTA-STS (on by default) asks for the domain's policy record too
        self.assertEqual(resolver.queries, [("MX", "example.test"), ("A", "example.test"),
                                            ("TXT", "_mta-sts.example.test")])

    @defer.inlineCallbacks
    def test_default_route_to_named_relay(self) -> defer.Generator:
        factory, port = self.server("127.0.0.3")
        resolver = FakeResolver(hosts={"smarthost.test": ["127.0.0.3"]})
        channel, root = self.channel({"smtproutes": f":smarthost.test:{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@anywhere.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertNotIn(("MX", "anywhere.test"), resolver.queries)


class DeadHostTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_dead_host_is_skipped(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        memory = DeadHostMemory(tcpto_path(root), clock=lambda: reactor.seconds() - 200)
        memory.record_timeout("127.0.0.1")
        DeadHostMemory(tcpto_path(root), clock=reactor.seconds).record_timeout("127.0.0.1")
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, TEXT_NO_CONNECTION)])
        self.assertEqual(factory.sessions, [])


class TLSTests(ChannelTestBase):
    def ca_file(self, cert: bytes) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(cert)
        return path

    @defer.inlineCallbacks
    def test_opportunistic_starttls(self) -> defer.Generator:
        factory, port = self.server()
        factory.use_certificate()
        channel, root = self.routed(port)
        body = b"Subject: tls\n\n.secret\n"
        results = yield channel.deliver(job(root, ["bob@example.test"], body))
        self.assertEqual(results, [DeliveryResult(SUCCESS, OK_TEXT)])
        [session] = factory.sessions
        self.assertTrue(session.tls)
        self.assertEqual([c for c in session.commands if c.startswith(b"EHLO")], [b"EHLO pymta.example"] * 2)
        self.assertEqual(session.data, [encode_message(body)])

    @defer.inlineCallbacks
    def test_failed_optional_handshake_retries_plain(self) -> defer.Generator:
        factory, port = self.server(extensions=[b"STARTTLS"], fail_tls=True)
        channel, root = self.routed(port)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(SUCCESS, OK_TEXT)])
        self.assertEqual(len(factory.sessions), 2)
        self.assertNotIn(b"STARTTLS", factory.sessions[1].commands)
        self.assertEqual(len(factory.sessions[1].data), 1)

    @defer.inlineCallbacks
    def test_verified_tls_required(self) -> defer.Generator:
        factory, port = self.server()
        cert = factory.use_certificate("mx.example.test")
        resolver = FakeResolver(hosts={"mx.example.test": ["127.0.0.1"]})
        channel, root = self.channel(
            {"smtproutes": f"example.test:mx.example.test:{port}", "tlsdestinations": f"example.test:{self.ca_file(cert)}"},
            resolver,
        )
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertTrue(factory.sessions[0].tls)

    @defer.inlineCallbacks
    def test_failed_verification_defers_without_sending(self) -> defer.Generator:
        factory, port = self.server()
        factory.use_certificate("mx.example.test")
        other, _ = self.server()
        untrusted_ca = other.use_certificate("mx.example.test")
        resolver = FakeResolver(hosts={"mx.example.test": ["127.0.0.1"]})
        channel, root = self.channel(
            {"smtproutes": f"example.test:mx.example.test:{port}", "tlsdestinations": f".test:{self.ca_file(untrusted_ca)}"},
            resolver,
        )
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        [result] = results
        self.assertEqual(result.status, DEFERRAL)
        self.assertTrue(result.text.startswith("TLS session with 127.0.0.1 failed: certificate verify failed"), result.text)
        self.assertEqual(len(factory.sessions), 1)
        self.assertFalse(any(c.startswith(b"MAIL") for c in factory.sessions[0].commands))

    @defer.inlineCallbacks
    def test_required_tls_not_offered(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port, tlsdestinations="example.test:")
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(
            results,
            [DeliveryResult(DEFERRAL, "127.0.0.1 does not offer STARTTLS, which is required for this destination. (#4.7.5)\n")],
        )
        self.assertFalse(any(c.startswith(b"MAIL") for c in factory.sessions[0].commands))

    @defer.inlineCallbacks
    def test_tls_disabled_for_domain(self) -> defer.Generator:
        factory, port = self.server()
        factory.use_certificate()
        channel, root = self.routed(port, tlsdestinations="-example.test")
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertNotIn(b"STARTTLS", factory.sessions[0].commands)


class TLSDestinationsFileTests(ChannelTestBase):
    """control/tlsdestinations is parsed when the channel is made and at each reload, not at delivery."""

    def test_bad_line_refuses_the_channel(self) -> None:
        root = make_root(self.mktemp(), {"tlsdestinations": "# verified\nbank.example\n"})
        error = self.assertRaises(ControlError, RemoteChannel, root, reader(root), resolver=FakeResolver(), reactor=reactor)
        self.assertTrue(str(error).startswith(f"{root}/control/tlsdestinations:2: expected domain:"), str(error))

    @defer.inlineCallbacks
    def test_reload_keeps_the_old_table(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port, tlsdestinations="-example.test")
        with open(os.path.join(root, "control", "tlsdestinations"), "w") as f:
            f.write("-example.test:\n")
        error = self.assertRaises(ControlError, channel.reader.reload)
        self.assertIn("tlsdestinations:1: nothing may follow the domain of a -domain line", str(error))
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)
        self.assertNotIn(b"STARTTLS", factory.sessions[0].commands)

    @defer.inlineCallbacks
    def test_unchecked_snapshot_defers_naming_file_and_line(self) -> defer.Generator:
        # only a snapshot that bypassed the reader's checks can get here: it defers and logs where the fault is
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        factory, port = self.server()
        channel, root = self.routed(port)
        with open(os.path.join(root, "control", "tlsdestinations"), "w") as f:
            f.write("example.test\n")
        channel.reader.current = load_controls(root)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, "Unable to read control files. (#4.3.0)\n")])
        logged = [formatEvent(e) for e in events if "tlsdestinations" in formatEvent(e)]
        self.assertEqual(len(logged), 1, logged)
        self.assertIn(f"{root}/control/tlsdestinations:1: expected domain:", logged[0])
        self.assertEqual(factory.sessions, [])


class IPv6Tests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_ipv6_relay(self) -> defer.Generator:
        try:
            factory, port = self.server("::1")
        except Exception as e:  # pragma: no cover - hosts without IPv6 loopback
            raise unittest.SkipTest(f"no IPv6 loopback: {e}")
        channel, root = self.channel({"smtproutes": f"example.test:[::1]:{port}"})
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results, [DeliveryResult(SUCCESS, OK_TEXT.replace("127.0.0.1", "::1"))])
        self.assertEqual(len(factory.sessions), 1)

    @defer.inlineCallbacks
    def test_ipv6_mx_address_after_ipv4_failure(self) -> defer.Generator:
        try:
            factory, port = self.server("::1")
        except Exception as e:  # pragma: no cover
            raise unittest.SkipTest(f"no IPv6 loopback: {e}")
        resolver = FakeResolver(mx={"example.test": [(10, "mx.example.test")]},
                                hosts={"mx.example.test": ["127.0.0.2", "::1"]})
        channel, root = self.channel({"smtproutes": f"example.test::{port}"}, resolver)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertEqual(results[0].status, SUCCESS)


class CommandInjectionTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_line_breaks_in_addresses_never_reach_the_wire(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.channel({"smtproutes": f":127.0.0.1:{port}"})
        evil = "x@example.test>\r\nRCPT TO:<victim@elsewhere.test"
        results = yield channel.deliver(job(root, [evil, "ok@example.test"]))
        self.assertEqual(results[0].status, FAILURE)
        self.assertIn("CR, LF or NUL", results[0].text)
        self.assertEqual(results[1].status, SUCCESS)
        self.assertNotIn(b"RCPT TO:<victim@elsewhere.test>", factory.sessions[0].commands)
        bad_sender = yield channel.deliver(job(root, ["ok@example.test"], sender="a\n@b", message_id=2))
        self.assertEqual(bad_sender[0].status, FAILURE)


class UnexpectedErrorTests(ChannelTestBase):
    def test_error_before_any_wait_defers_every_recipient(self) -> None:
        channel, root = self.channel({"smtproutes": ":127.0.0.1:1"})

        class Broken:
            @property
            def current(self) -> None:
                raise RuntimeError("a bug")

        channel.reader = Broken()  # type: ignore[assignment]  # a fault before the first wait
        results = self.successResultOf(channel.deliver(job(root, ["a@example.test", "b@example.test"])))
        self.assertEqual([r.status for r in results], [DEFERRAL, DEFERRAL])
        self.assertIn("see the log", results[0].text)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class RealResolverTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_mx_lookup_through_a_dns_server(self) -> defer.Generator:
        from twisted.names import dns as tdns

        from pymta.dns import DNSResolver
        from tests.remote.dnsserver import DNSTestServer

        factory, port = self.server("127.0.0.3")
        server = DNSTestServer(b"example.test", {
            b"example.test": [tdns.Record_MX(10, b"mx.example.test")],
            b"mx.example.test": [tdns.Record_A("127.0.0.3")],
            b"loop.example.test": [tdns.Record_MX(10, b"self.example.test")],
            b"self.example.test": [tdns.Record_A("127.0.0.1")],
            b"cname.example.test": [tdns.Record_CNAME(b"cname.example.test")],
        })
        self.addCleanup(server.stop)
        resolver = DNSResolver(reactor, resolver=server.dnspython_resolver())
        self.addCleanup(resolver.stop)
        root = make_root(self.mktemp(), {"smtproutes": f"example.test::{port}"})
        own = {"127.0.0.1"}
        channel = RemoteChannel(root, reader(root), resolver=resolver, reactor=reactor, is_own_address=own.__contains__)
        self.addCleanup(channel.stop)
        results = yield channel.deliver(job(root, ["bob@example.test", "eve@loop.example.test", "x@nosuch.example.test",
                                                   "y@cname.example.test"]))
        self.assertEqual(results[0], DeliveryResult(SUCCESS, OK_TEXT.replace("127.0.0.1", "127.0.0.3")))
        self.assertEqual(results[1], DeliveryResult(DEFERRAL, TEXT_SELF_MX + "\n"))
        self.assertEqual(results[2], DeliveryResult(FAILURE, "Sorry, I couldn't find any host named nosuch.example.test. (#5.1.2)\n"))
        # a CNAME pointing at itself: dnspython gives up on the chain, a temporary failure
        self.assertEqual(results[3], DeliveryResult(DEFERRAL, "Sorry, I couldn't find any host by that name. (#4.1.2)\n"))
        self.assertEqual(len(factory.sessions), 1)


class LifeCycleTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_stop_then_start(self) -> defer.Generator:
        factory, port = self.server()
        channel, root = self.routed(port)
        yield channel.deliver(job(root, ["a@example.test"], message_id=1))
        yield channel.stop()  # the kept connection is closed politely
        yield eventually(lambda: factory.sessions[0].commands[-1] == b"QUIT", what="the kept connection's QUIT")
        self.assertEqual(factory.sessions[0].commands[-1], b"QUIT")
        stopped = yield channel.deliver(job(root, ["b@example.test"], message_id=2))
        self.assertEqual(stopped[0].status, DEFERRAL)
        channel.start()
        again = yield channel.deliver(job(root, ["c@example.test"], message_id=3))
        self.assertEqual(again[0].status, SUCCESS)


class LogLinesNameTheMessageTests(ChannelTestBase):
    """Every log line of a delivery says which message (and delivery) it is about."""

    def logged(self) -> list[str]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.events = events
        return events

    def texts(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e.get("log_namespace") == "pymta.remote"]

    def numbered(self, root: str, recipients: list[str], numbers: tuple[int, ...], message_id: int = 4242):
        plain = job(root, recipients, message_id=message_id)
        return DeliveryJob(plain.message_id, plain.message_path, plain.sender, plain.recipients, numbers)

    @defer.inlineCallbacks
    def test_connect_error(self) -> defer.Generator:
        _, port = self.server("127.0.0.3")  # the port is free on 127.0.0.2: nobody listens there
        channel, root = self.channel({"smtproutes": f"example.test:127.0.0.2:{port}"})
        self.logged()
        results = yield channel.deliver(self.numbered(root, ["bob@example.test", "carol@example.test"], (7, 8)))
        self.assertEqual(results, [DeliveryResult(DEFERRAL, TEXT_NO_CONNECTION)] * 2)
        (line,) = [t for t in self.texts() if "connect to" in t]
        self.assertTrue(line.startswith(f"msg 4242 deliveries 7,8: connect to 127.0.0.2:{port} failed: "), line)
        self.assertEqual([e["message_id"] for e in self.events if "connect to" in formatEvent(e)], [4242])

    @defer.inlineCallbacks
    def test_dead_host(self) -> defer.Generator:
        _, port = self.server()
        channel, root = self.routed(port)
        memory = DeadHostMemory(tcpto_path(root), clock=lambda: reactor.seconds() - 200)
        memory.record_timeout("127.0.0.1")
        DeadHostMemory(tcpto_path(root), clock=reactor.seconds).record_timeout("127.0.0.1")
        self.logged()
        yield channel.deliver(self.numbered(root, ["bob@example.test"], (3,)))
        self.assertIn("msg 4242 delivery 3: 127.0.0.1 is marked dead (no answer lately); not tried", self.texts())

    def test_job_without_numbers(self) -> None:
        self.assertEqual(DeliveryJob(5, "p", "s", ("a", "b")).about(), "msg 5")
        self.assertEqual(DeliveryJob(5, "p", "s", ("a", "b"), (1, 2)).about("b"), "msg 5 delivery 2")
