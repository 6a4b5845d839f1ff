"""
Passing DSN requests on (pymta.remote.dsnout) through RemoteChannel: real
sockets on 127.0.0.1, a scripted server with and without DSN in its EHLO;
the requests come with the job (DeliveryJob.dsn).
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.interfaces import SUCCESS, DeliveryJob
from pymta.queue.dsnfile import encode_dsn_file, parse_dsn_file
from tests.remote.helpers import job
from tests.remote.test_channel import ChannelTestBase


def with_requests(delivery: DeliveryJob, dsn: MessageDsn, routed: list[str]) -> DeliveryJob:
    """The job with the message's DSN data, as the scheduler hands it over (what dsn/N/ID holds)."""
    return replace(delivery, dsn=parse_dsn_file(encode_dsn_file(dsn, routed)))


DSN = MessageDsn("HDRS", "env+2B1", (RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;orig@example.test"), RecipientDsn()))


class PassOnTests(ChannelTestBase):
    @defer.inlineCallbacks
    def test_server_with_dsn_gets_the_requests(self) -> defer.Generator:
        factory, port = self.server(extensions=[b"PIPELINING", b"DSN"])
        channel, root = self.routed(port)
        rcpts = ["bob@example.test", "carol@example.test"]
        results = yield channel.deliver(with_requests(job(root, rcpts), DSN, rcpts))
        self.assertEqual([(r.status, r.notify_passed_on) for r in results], [(SUCCESS, True), (SUCCESS, True)])
        commands = factory.sessions[0].commands
        self.assertIn(b"MAIL FROM:<alice@pymta.example> RET=HDRS ENVID=env+2B1", commands)
        self.assertIn(b"RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.test", commands)
        # no ORCPT kept (none given, or the address itself): the recipient as received (RFC 3461 section 4.2)
        self.assertIn(b"RCPT TO:<carol@example.test> ORCPT=rfc822;carol@example.test", commands)

    @defer.inlineCallbacks
    def test_server_without_dsn_gets_plain_commands(self) -> defer.Generator:
        factory, port = self.server(extensions=[b"PIPELINING"])
        channel, root = self.routed(port)
        rcpts = ["bob@example.test", "carol@example.test"]
        results = yield channel.deliver(with_requests(job(root, rcpts), DSN, rcpts))
        self.assertEqual([(r.status, r.notify_passed_on) for r in results], [(SUCCESS, False), (SUCCESS, False)])
        commands = factory.sessions[0].commands
        self.assertIn(b"MAIL FROM:<alice@pymta.example>", commands)
        self.assertIn(b"RCPT TO:<bob@example.test>", commands)

    @defer.inlineCallbacks
    def test_message_without_requests(self) -> defer.Generator:
        factory, port = self.server(extensions=[b"DSN"])
        channel, root = self.routed(port)
        results = yield channel.deliver(job(root, ["bob@example.test"]))
        self.assertFalse(results[0].notify_passed_on)
        self.assertIn(b"RCPT TO:<bob@example.test>", factory.sessions[0].commands)
