"""
A pymta-smtpd in its own process for the memory test: a sink that writes
each message to a file, a listener on 127.0.0.1 port 0.  Prints
C{PORT <port>} when listening and C{QUEUED <bytes> <rss_kib> <peak_rss_kib>} after
every message, so the parent can compare the peak with the resident size
before a big message.

With C{--inject SOCKET}, smtpd writes through L{InjectClientSink} to an
inject server listening on C{SOCKET}, which C{--inject-server SOCKET}
starts in another process (a deliberately slow C{FileSink}, which prints the
C{QUEUED} lines then).

Run: python -m tests.smtpd.memory_server ROOT [--inject SOCKET]
     python -m tests.smtpd.memory_server ROOT --inject-server SOCKET
"""

from __future__ import annotations

import os
from typing import Callable
import resource
import sys
import time

from twisted.internet import defer, reactor

from pymta.control import ControlReader
from pymta.interfaces import QueueReceipt
from pymta.queue.injectclient import InjectClientSink
from pymta.queue.injectserver import InjectServerFactory
from pymta.smtpd.service import build_smtpd_service


def memory_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process in KiB, from /proc; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class FileWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self.f = open(path, "wb")
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.f.write(data)

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # written at once: never a backlog

    def finish(self) -> defer.Deferred:
        self.f.close()
        print(f"QUEUED {self.size} {memory_kib('VmRSS')} {memory_kib('VmHWM')}", flush=True)
        return defer.succeed(QueueReceipt(1, os.getpid()))

    def abort(self) -> None:
        self.f.close()
        os.unlink(self.path)


class FileSink:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.n = 0

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):  # type: ignore[no-untyped-def]
        self.n += 1
        return FileWriter(os.path.join(self.directory, f"msg{self.n}"))


class SlowFileWriter(FileWriter):
    """Takes 2 ms per chunk: a queue slower than the client, as a real one that fsyncs can be."""

    def write(self, data: bytes) -> None:
        time.sleep(0.002)
        super().write(data)


class SlowFileSink(FileSink):
    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):  # type: ignore[no-untyped-def]
        self.n += 1
        return SlowFileWriter(os.path.join(self.directory, f"msg{self.n}"))


def inject_server(root: str, socket_path: str) -> None:
    port = reactor.listenUNIX(socket_path, InjectServerFactory(SlowFileSink(root)))
    print(f"LISTENING {port.getHost().name}", flush=True)
    reactor.run()


def main(root: str, inject: str | None = None) -> None:
    sink = FileSink(root) if inject is None else InjectClientSink(reactor, inject, keep_connections=4)
    svc = build_smtpd_service(root, ControlReader(root), sink, ["tcp:0:interface=127.0.0.1"], [], reactor=reactor, portal_checkers=[])
    svc.startService()
    listener = next(iter(svc))
    port = listener._waitingForPort.result.getHost().port
    print(f"PORT {port} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)
    reactor.run()


if __name__ == "__main__":
    if sys.argv[2:3] == ["--inject-server"]:
        inject_server(sys.argv[1], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[3] if sys.argv[2:3] == ["--inject"] else None)
