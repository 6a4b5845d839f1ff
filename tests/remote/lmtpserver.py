"""
A small scripted LMTP server (RFC 2033) for the LMTP delivery tests, on a
unix socket or 127.0.0.1: one reply per accepted recipient after the dot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import protocol
from twisted.protocols.basic import LineReceiver


@dataclass
class LMTPSession:
    commands: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)


class ScriptedLMTPServer(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1_000_000
    factory: "ScriptedLMTPFactory"

    def connectionMade(self) -> None:
        self.session = LMTPSession()
        self.factory.sessions.append(self.session)
        self.factory.open += 1
        self.factory.most_open = max(self.factory.most_open, self.factory.open)
        self.in_data = False
        self.accepted: list[bytes] = []
        self.lines: list[bytes] = []
        self.transport.write(b"220 lmtp.test ready\r\n")

    def connectionLost(self, reason: object = None) -> None:
        self.factory.open -= 1

    def lineReceived(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if self.in_data:
            if line != b".":
                self.lines.append(line)
                return
            self.in_data = False
            self.session.messages.append(b"\n".join(self.lines) + b"\n")
            self.lines = []
            for address in self.accepted:
                self.transport.write(self.factory.after_dot.get(address, b"250 2.0.0 <%s> Saved" % address) + b"\r\n")
            self.accepted = []
            if self.factory.close_after_dot:
                self.transport.loseConnection()
            return
        self.session.commands.append(line)
        verb = line.split(b" ")[0].upper()
        if verb == b"LHLO":
            self.transport.write(b"250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n")
        elif verb in (b"MAIL", b"RSET"):
            self.accepted = []
            self.transport.write(b"250 2.1.0 OK\r\n")
        elif verb == b"RCPT":
            address = line.partition(b"<")[2].partition(b">")[0]
            if address in self.factory.unknown:
                self.transport.write(b"550 5.1.1 <%s> User doesn't exist: %s\r\n" % (address, address))
            else:
                self.accepted.append(address)
                self.transport.write(b"250 2.1.5 OK\r\n")
        elif verb == b"DATA":
            if not self.accepted:
                self.transport.write(b"503 5.5.1 No valid recipients\r\n")
                return
            self.in_data = True
            self.transport.write(b"354 OK\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 2.0.0 Bye\r\n")
            self.transport.loseConnection()
        else:
            self.transport.write(b"500 5.5.1 Unknown command\r\n")


class ScriptedLMTPFactory(protocol.Factory):
    protocol = ScriptedLMTPServer
    noisy = False

    def __init__(self, unknown: tuple[bytes, ...] = (), after_dot: dict[bytes, bytes] | None = None,
                 close_after_dot: bool = False) -> None:
        self.unknown = set(unknown)
        self.after_dot = after_dot or {}
        self.close_after_dot = close_after_dot
        self.sessions: list[LMTPSession] = []
        self.open = 0
        self.most_open = 0
