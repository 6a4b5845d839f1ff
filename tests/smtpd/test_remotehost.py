"""The client's confirmed host name (tcpserver -h -p), with a fake resolver and task.Clock."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.remotehost import can_look_up, remote_host_name
from tests.smtpd.test_dnsbl import FakeResolver


class RemoteHostName(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()

    def name_of(self, resolver: FakeResolver, ip: str) -> object:
        return self.successResultOf(remote_host_name(resolver, ip, 5, self.clock))

    def test_confirmed_name(self) -> None:
        resolver = FakeResolver(a={"mx.good.example": ["192.0.2.7"]})
        resolver.ptr_records = {"192.0.2.7": ["mx.good.example."]}
        self.assertEqual(self.name_of(resolver, "192.0.2.7"), "mx.good.example")
        self.assertEqual(resolver.queries, [("PTR", "192.0.2.7"), ("A", "mx.good.example")])

    def test_name_not_mapping_back(self) -> None:
        resolver = FakeResolver(a={"mx.liar.example": ["198.51.100.1"]})
        resolver.ptr_records = {"192.0.2.7": ["mx.liar.example"]}
        self.assertIsNone(self.name_of(resolver, "192.0.2.7"))

    def test_no_ptr_record(self) -> None:
        resolver = FakeResolver()
        resolver.ptr_records = {}
        self.assertIsNone(self.name_of(resolver, "192.0.2.7"))

    def test_no_answer_within_the_time(self) -> None:
        d = remote_host_name(FakeResolver(hang=True), "192.0.2.7", 5, self.clock)
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertIsNone(self.successResultOf(d))

    def test_can_look_up(self) -> None:
        self.assertTrue(can_look_up(FakeResolver()))
        self.assertFalse(can_look_up(None))
        self.assertFalse(can_look_up(object()))
