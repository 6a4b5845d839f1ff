"""
Small scripted SMTP servers on 127.0.0.x for client tests.

A L{ScriptedServerFactory} answers every command from its settings and
records what it saw (one L{Session} per connection), including the raw
DATA bytes exactly as received.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import protocol, reactor, ssl
from twisted.protocols.basic import LineReceiver

from tests.smtpd import tlsutil


def make_certificate(hostname: str = "mx.example.test") -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key, PEM, for C{hostname} (and 127.0.0.1), valid for two days."""
    return tlsutil.make_certificate(hostname, ip="127.0.0.1", ca=True, days=2)


@dataclass
class Session:
    commands: list[bytes] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    tls: bool = False

    def transactions(self) -> list[list[bytes]]:
        """The commands split at each MAIL (commands before the first MAIL dropped)."""
        out: list[list[bytes]] = []
        for c in self.commands:
            if c.upper().startswith(b"MAIL"):
                out.append([])
            if out:
                out[-1].append(c)
        return out


class ScriptedServer(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1_000_000

    def connectionMade(self) -> None:
        self.session = Session()
        self.factory.sessions.append(self.session)
        self.in_data = False
        self.raw: list[bytes] = []
        if self.factory.greeting is not None:
            self.transport.write(self.factory.greeting)

    def lineReceived(self, line: bytes) -> None:
        if self.in_data:
            self.raw.append(line + b"\n")
            if line == b".\r":
                self.in_data = False
                self.session.data.append(b"".join(self.raw))
                self.raw = []
                self.reply(b"DOT", self.factory.dot_reply)
                if self.factory.close_after_dot:
                    self.transport.loseConnection()
            elif self.factory.close_in_data and len(self.raw) >= 2:
                self.transport.loseConnection()
            return
        line = line.rstrip(b"\r")
        self.session.commands.append(line)
        verb = line.split(b" ")[0].split(b":")[0].upper()
        if verb == b"EHLO":
            self.reply(verb, self.factory.ehlo_reply())
        elif verb == b"HELO":
            self.reply(verb, self.factory.helo_reply)
        elif verb == b"STARTTLS":
            self.reply(verb, self.factory.starttls_reply)
            if self.factory.fail_tls:
                self.transport.write(b"this is not TLS\r\n")
                self.transport.loseConnection()
            elif self.factory.starttls_reply.startswith(b"220"):
                self.transport.startTLS(self.factory.tls_options)
                self.session.tls = True
        elif verb == b"MAIL":
            sequence = self.factory.mail_reply_sequence
            self.reply(verb, sequence.pop(0) if sequence else self.factory.mail_reply)
        elif verb == b"RCPT":
            address = line.split(b"<", 1)[1].rsplit(b">", 1)[0].decode()
            self.reply(verb, self.factory.rcpt_reply(address, self.session))
        elif verb == b"DATA":
            self.reply(verb, self.factory.data_reply)
            if self.factory.data_reply.startswith(b"354"):
                self.in_data = True
                if self.factory.stop_reading_in_data:
                    self.transport.pauseProducing()
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.loseConnection()
        elif verb == b"RSET":
            self.transport.write(b"250 ok\r\n")
        else:
            self.transport.write(b"502 unimplemented\r\n")

    def reply(self, verb: bytes, text: bytes | None) -> None:
        if text is None:
            return
        self.transport.write(text)


class ScriptedServerFactory(protocol.ServerFactory):
    protocol = ScriptedServer
    noisy = False

    def __init__(self, **settings: object) -> None:
        self.sessions: list[Session] = []
        self.greeting: bytes | None = b"220 test.example ESMTP\r\n"
        self.extensions: list[bytes] = [b"PIPELINING", b"8BITMIME"]
        self.helo_reply = b"250 test.example\r\n"
        self.ehlo_refused: bytes | None = None
        self.starttls_reply = b"220 go ahead\r\n"
        self.mail_reply = b"250 ok\r\n"
        self.rcpt_replies: dict[str, bytes] = {}
        self.rcpt_limit: int | None = None
        self.data_reply = b"354 go ahead\r\n"
        self.dot_reply = b"250 ok 1234 qp 56\r\n"
        self.close_in_data = False
        self.fail_tls = False
        self.close_after_dot = False
        self.stop_reading_in_data = False
        self.mail_reply_sequence: list[bytes] = []
        self.tls_options = None
        for name, value in settings.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)

    def ehlo_reply(self) -> bytes:
        if self.ehlo_refused is not None:
            return self.ehlo_refused
        extensions = list(self.extensions)
        if self.tls_options is not None:
            extensions.append(b"STARTTLS")
        lines = [b"test.example"] + extensions
        return b"".join(b"250" + (b" " if i == len(lines) - 1 else b"-") + l + b"\r\n" for i, l in enumerate(lines))

    def rcpt_reply(self, address: str, session: Session) -> bytes:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        if self.rcpt_limit is not None:
            since_mail = session.commands[max(i for i, c in enumerate(session.commands) if c.upper().startswith(b"MAIL")):]
            taken = sum(1 for c in since_mail if c.upper().startswith(b"RCPT"))
            if taken > self.rcpt_limit:
                return b"452 4.5.3 too many recipients\r\n"
        return b"250 ok\r\n"

    def use_certificate(self, hostname: str = "mx.example.test") -> bytes:
        cert, key = make_certificate(hostname)
        self.tls_options = ssl.PrivateCertificate.loadPEM(key + cert).options()
        return cert


def listen(factory: protocol.ServerFactory, interface: str = "127.0.0.1", port: int = 0):
    return reactor.listenTCP(port, factory, interface=interface)
