"""
pymta-smtpd alone, for benchmarks/smtpd_bench.py --file-sink: the same
service with a sink that writes each message to its own file and fsyncs it
before the 250 (no queue manager).  Separates the SMTP side's cost from the
queue's.

Run: python benchmarks/smtpd_filesink.py ROOT PORT
"""

from __future__ import annotations

import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, reactor  # noqa: E402

from pymta.control import ControlReader  # noqa: E402
from pymta.interfaces import QueueReceipt  # noqa: E402
from pymta.smtpd.service import build_smtpd_service  # noqa: E402


class FsyncWriter:
    def __init__(self, path: str, number: int) -> None:
        self.path = path
        self.number = number
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # written at once: never a backlog

    def finish(self) -> defer.Deferred:
        os.fsync(self.fd)
        os.close(self.fd)
        return defer.succeed(QueueReceipt(self.number, os.getpid()))

    def abort(self) -> None:
        os.close(self.fd)
        os.unlink(self.path)


class FsyncSink:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.n = 0

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):  # type: ignore[no-untyped-def]
        self.n += 1
        return FsyncWriter(os.path.join(self.directory, str(self.n)), self.n)


def main(root: str, port: int) -> None:
    out = os.path.join(root, "filesink")
    os.makedirs(out, exist_ok=True)
    svc = build_smtpd_service(root, ControlReader(root), FsyncSink(out), [f"tcp:{port}:interface=127.0.0.1"], [],
                              reactor=reactor, portal_checkers=[])
    svc.startService()
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
