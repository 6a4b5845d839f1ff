"""pymta.milter.sessions: no chain without filters, control/milters read per snapshot, TCP filters through endpoints."""

from __future__ import annotations

import os
import struct

from twisted.internet import reactor
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from pymta.control import Controls
from pymta.milter.api import CONTINUE, ConnectInfo
from pymta.milter.chain import MilterChain
from pymta.milter.sessions import Milters
from pymta.milter.wire import PacketReader, encode_packet
from tests.controlfiles import controls_from

REACTOR: IReactorTime = reactor  # type: ignore[assignment]  # the global reactor provides IReactorTime


class AgreeableFilter(Protocol):
    """A milter in the test's reactor: negotiates nothing special and continues at every stage."""

    def connectionMade(self) -> None:
        self.reader = PacketReader()

    def dataReceived(self, data: bytes) -> None:
        for command, _ in self.reader.feed(data):
            if command == b"O":
                self.transport.write(encode_packet(b"O", struct.pack(">III", 6, 0, 0)))  # type: ignore[union-attr]
            elif command in b"CHMRTLNBE":
                self.transport.write(encode_packet(b"c"))  # type: ignore[union-attr]


class MiltersTests(unittest.TestCase):
    def controls(self, text: str | None) -> Controls:
        return controls_from(self, milters=text)

    def test_no_filters_no_session(self) -> None:
        for text in (None, "", "# later\n"):
            controls = self.controls(text)
            self.assertIsNone(Milters(lambda: controls, REACTOR).session())

    def test_parsed_once_per_snapshot(self) -> None:
        current = [self.controls("a unix:/a.sock\n")]
        milters = Milters(lambda: current[0], REACTOR)
        first = milters.session()
        assert isinstance(first, MilterChain)
        self.assertEqual([f.spec.name for f in first.filters], ["a"])
        os.remove(current[0].path("milters"))
        second = milters.session()
        assert isinstance(second, MilterChain)
        self.assertIs(second.filters[0].spec, first.filters[0].spec)
        current[0] = self.controls("b unix:/b.sock\nc unix:/c.sock\n")
        third = milters.session()
        assert isinstance(third, MilterChain)
        self.assertEqual([f.spec.name for f in third.filters], ["b", "c"])

    async def test_tcp_filter(self) -> None:
        tcp: IReactorTCP = reactor  # type: ignore[assignment]  # the global reactor provides IReactorTCP
        port = tcp.listenTCP(0, Factory.forProtocol(AgreeableFilter), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        controls = self.controls(f"tcp inet:{port.getHost().port}@127.0.0.1\n")
        session = Milters(lambda: controls, REACTOR).session()
        assert isinstance(session, MilterChain)
        self.assertEqual(await session.connect(ConnectInfo("c.example", "4", "192.0.2.1", 1), {}), CONTINUE)
        self.assertEqual(await session.helo("c.example", {}), CONTINUE)
        self.assertIsNone(session.filters[0].broken)
        session.close()
