"""A FilterSession wired to a StringTransport and a task.Clock: the test plays the filter packet by packet."""

from __future__ import annotations

import struct
from typing import Iterator

from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from pymta.milter.connection import MilterConnection
from pymta.milter.filter import FilterSession
from pymta.milter.settings import MilterSpec, parse_milter_line
from pymta.milter.wire import PacketReader, encode_packet

__all__ = ["Message", "Wired", "spec"]


def spec(line: str = "f unix:/run/f.sock") -> MilterSpec:
    return parse_milter_line(line)


class Wired:
    """One filter session and the filter's end of its connection."""

    def __init__(self, milter: MilterSpec | None = None, clock: task.Clock | None = None) -> None:
        self.clock = clock or task.Clock()
        self.transport = StringTransport()
        self.connection = MilterConnection(self.clock)
        self.connects = 0
        self.session = FilterSession(milter or spec(), self.clock, self.connect)

    def connect(self, _: MilterSpec) -> "defer.Deferred[MilterConnection]":
        self.connects += 1
        self.connection.makeConnection(self.transport)
        return defer.succeed(self.connection)

    def sent(self) -> list[tuple[bytes, bytes]]:
        """The packets the MTA sent since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return PacketReader().feed(data)

    def commands(self) -> bytes:
        return b"".join(command for command, _ in self.sent())

    def answer(self, command: bytes, data: bytes = b"") -> None:
        self.connection.dataReceived(encode_packet(command, data))

    def open(self, actions: int = 0x1FF, steps: int = 0, extra: bytes = b"", version: int = 6) -> None:
        """Open the session and negotiate C{actions} and C{steps}."""
        opened = self.session.open()
        assert self.sent()[0][0] == b"O"
        self.answer(b"O", struct.pack(">III", version, actions, steps) + extra)
        assert opened.called


class Message:
    """A message for end_of_message: its header fields and its body, handed out in chunks."""

    def __init__(self, headers: list[tuple[str, str]], body: bytes) -> None:
        self.headers, self.body = headers, body

    def header_fields(self) -> list[tuple[str, str]]:
        return self.headers

    def body_chunks(self, size: int) -> Iterator[bytes]:
        for start in range(0, len(self.body), size):
            yield self.body[start:start + size]
