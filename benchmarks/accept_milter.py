"""
A milter that accepts everything, for benchmarks/end_to_end_bench.py's
C{pymta-milter} and C{postfix-milter} runs: the same filter behind both
MTAs, so the ratio measures each MTA's side of the milter protocol.

It asks for every stage (no C{SMFIP_NO*} flag) and answers every one, so
the MTA sends it the whole message (each header field, the body chunks)
and waits for each answer; it requests no modification and accepts at the
end of the message.  One Twisted process, all sessions on its reactor.

Usage: python benchmarks/accept_milter.py PORT   (listens on 127.0.0.1:PORT)
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from typing import Any, cast

from twisted.internet import defer, protocol
from twisted.internet.interfaces import ITCPTransport
from twisted.protocols.basic import Int32StringReceiver

VERSION = 6
# answered with "continue"; the others (macros, abort, quit-new-connection) get no answer
_CONTINUE = frozenset(b"CHMRTLNBU")


#: connections and messages (end of message) seen, printed when the milter stops
SEEN = {"connections": 0, "messages": 0}


class AcceptAll(Int32StringReceiver):
    """One MTA connection: each packet is a 4-byte length, a command letter and its data."""

    MAX_LENGTH = 1 << 20

    def connectionMade(self) -> None:
        cast(ITCPTransport, self.transport).setTcpNoDelay(True)
        SEEN["connections"] += 1

    def reply(self, command: bytes, data: bytes = b"") -> None:
        self.sendString(command + data)

    def stringReceived(self, packet: bytes) -> None:
        command = packet[0]
        if command == ord("O"):
            self.reply(b"O", struct.pack("!III", VERSION, 0, 0))  # no actions, every stage, every answer
        elif command in _CONTINUE:
            self.reply(b"c")
        elif command == ord("E"):
            SEEN["messages"] += 1
            self.reply(b"a")
        elif command == ord("Q") and self.transport is not None:
            self.transport.loseConnection()


class AcceptMilter:
    """
    Runs this module as a child process on 127.0.0.1:C{port} (L{start},
    L{stop}: it prints how many connections and messages it saw).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.socket = f"inet:127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        import socket

        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(self.port)],
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"accept_milter did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def main() -> None:
    from twisted.internet import endpoints, task

    def serve(reactor: Any) -> "defer.Deferred[None]":
        endpoint = endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), backlog=200, interface="127.0.0.1")
        endpoint.listen(protocol.ServerFactory.forProtocol(AcceptAll))
        reactor.addSystemEventTrigger("before", "shutdown", lambda: print(
            f"accept_milter: {SEEN['connections']} connections, {SEEN['messages']} messages", flush=True))
        return defer.Deferred()  # until SIGTERM stops the reactor

    task.react(serve)


if __name__ == "__main__":
    main()
