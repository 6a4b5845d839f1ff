"""
A blocking, test-only milter conversation: enough of the MTA's side of the
Sendmail milter protocol (version 6) to ask a real filter about one message
and read its answer, so tests/milterdaemons.py can show each daemon works
before pymta's own client (pymta/milter/) is in the picture.

It offers every action and asks for every stage; the stages a filter
declines (the C{SMFIP_NO*} flags) are not sent, those it will not answer
(C{SMFIP_NR_*}) are not waited for, and a C{SKIP} answer to a body chunk
ends the body there.  Only for tests: no timeouts
beyond the socket's, no macros beyond the few the daemons here look at.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

__all__ = ["MilterAnswer", "ask_milter", "split_message"]

VERSION = 6
ALL_ACTIONS = 0x1FF
# protocol flags: (do not send, do not wait for a reply) per stage
_STAGE_FLAGS = {
    b"C": (0x1, 0x1000), b"H": (0x2, 0x2000), b"M": (0x4, 0x4000), b"R": (0x8, 0x8000),
    b"T": (0x200, 0x10000), b"L": (0x20, 0x80), b"N": (0x40, 0x40000), b"B": (0x10, 0x80000),
}
_OFFERED = 0x1FFFFF
_FINAL = {b"a": "accept", b"r": "reject", b"t": "tempfail", b"d": "discard", b"y": "reply", b"c": "continue"}


@dataclass
class MilterAnswer:
    """What the filter said: the stage it decided at, its verdict, its reply text, its modifications."""

    stage: str
    verdict: str
    reply: str = ""
    #: (command letter, raw data) of every modification request at end of message
    modifications: list[tuple[str, bytes]] = field(default_factory=list)

    def headers_added(self) -> dict[str, str]:
        """Name -> value of the header fields the filter added or inserted (C{h}, C{i})."""
        out = {}
        for command, data in self.modifications:
            if command == "i":
                data = data[4:]
            if command in ("h", "i"):
                name, value = data.rstrip(b"\0").split(b"\0", 1)
                out[name.decode()] = value.decode(errors="replace")
        return out


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields (name, value, folded lines kept) and the body of a CRLF message."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value.lstrip(b" ")))
    return fields, body


class _Conversation:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self.flags = 0

    def send(self, command: bytes, data: bytes = b"") -> None:
        self.sock.sendall(struct.pack("!I", len(data) + 1) + command + data)

    def receive(self) -> tuple[bytes, bytes]:
        head = self.file.read(4)
        if len(head) < 4:
            raise ConnectionError("the filter closed the connection")
        (length,) = struct.unpack("!I", head)
        packet = self.file.read(length)
        return packet[:1], packet[1:]

    def stage(self, command: bytes, data: bytes = b"") -> tuple[bytes, bytes] | None:
        """Send one stage (unless declined); its answer, or None when none is due."""
        skip, no_reply = _STAGE_FLAGS.get(command, (0, 0))
        if self.flags & skip:
            return None
        self.send(command, data)
        if self.flags & no_reply:
            return None
        while True:
            answer = self.receive()
            if answer[0] != b"p":  # progress: keep waiting
                return answer


def ask_milter(address: str | tuple[str, int], message: bytes, sender: str = "sender@example.org",
               recipients: tuple[str, ...] = ("rcpt@example.net",), client: str = "127.0.0.1",
               timeout: float = 30.0) -> MilterAnswer:
    """Offer one message to the filter at C{address} (a unix socket path or (host, port))."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        if family == socket.AF_INET:  # a macro packet and its command go out back to back: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        talk = _Conversation(sock)
        talk.send(b"O", struct.pack("!III", VERSION, ALL_ACTIONS, _OFFERED))
        command, data = talk.receive()
        if command != b"O":
            raise ConnectionError(f"no option negotiation answer: {command!r}")
        _, _, talk.flags = struct.unpack("!III", data[:12])
        talk.send(b"D", b"C" + b"j\0mta.example\0{daemon_name}\0pymta\0{client_addr}\0" + client.encode() + b"\0")
        queue_id = b"i\0" + b"4F2A1B\0"
        sender_b, rcpts = sender.encode(), [r.encode() for r in recipients]
        steps: list[tuple[str, bytes, bytes, bytes]] = [
            ("connect", b"C", b"client.example\0" + b"4" + struct.pack("!H", 40000) + client.encode() + b"\0", b""),
            ("helo", b"H", b"client.example\0", b""),
            ("mail", b"M", b"<" + sender_b + b">\0", b"M" + queue_id + b"{mail_addr}\0" + sender_b + b"\0"),
            *(("rcpt", b"R", b"<" + r + b">\0", b"R{rcpt_addr}\0" + r + b"\0") for r in rcpts),
            ("data", b"T", b"", b"T" + queue_id),
        ]
        fields, body = split_message(message)
        steps += [("header", b"L", name + b"\0" + value + b"\0", b"") for name, value in fields]
        steps.append(("eoh", b"N", b"", b""))
        steps += [("body", b"B", body[i:i + 65535], b"") for i in range(0, len(body), 65535)]
        skipping = False
        for stage, command, data, macros in steps:
            if skipping and command == b"B":
                continue
            if macros:
                talk.send(b"D", macros)
            answer = talk.stage(command, data)
            if answer is not None and answer[0] == b"s":  # skip: no more body chunks, on to the end
                skipping = True
                continue
            if answer is not None and answer[0] != b"c":
                talk.send(b"Q")
                return MilterAnswer(stage, _FINAL.get(answer[0], repr(answer[0])),
                                    answer[1].rstrip(b"\0").decode(errors="replace"))
        talk.send(b"E")
        result = MilterAnswer("eom", "")
        while not result.verdict:
            command, data = talk.receive()
            if command in _FINAL:
                result.verdict, result.reply = _FINAL[command], data.rstrip(b"\0").decode(errors="replace")
            elif command != b"p":
                result.modifications.append((command.decode(), data))
        talk.send(b"Q")
        return result
