# -*- test-case-name: tests.qmailqueue.test_stdinpipe -*-
"""
The write end of a C{QMAILQUEUE} program's descriptor 0, held by us
rather than by the reactor's process transport, so that we count what we
handed to it and what the pipe took: when it ends, L{MessagePipe.unsent}
says whether the program was given the whole message (its exit 0 counts
only then, as qmail-smtpd ignores qmail-queue's exit 0 after a write
error).  Bytes the pipe took are the program's: the kernel keeps them for
it as it keeps them for qmail-queue.

L{start_with_pipe} makes the pipe: its read end is the child's descriptor
0 (C{spawnProcess} maps a descriptor number given in C{childFDs}) and is
closed here once the child has it; the write end is non-blocking and
watched by the reactor as any L{FileDescriptor}.  A write error (the
program closed its end: C{EPIPE}) ends it at once;
L{MessagePipe.loseConnection} ends it once every byte handed to it has
been taken; L{MessagePipe.close} ends it at once, whatever is left.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import abstract, fdesc, main
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["MessagePipe", "start_with_pipe"]


class MessagePipe(abstract.FileDescriptor):
    """
    A non-blocking pipe's write end: C{handed} bytes given to L{write},
    C{taken} of them written to the pipe; C{ended()} is called once, when
    it has closed (for any reason).
    """

    connected = 1

    def __init__(self, fd: int, reactor: Any, ended: Callable[[], None]) -> None:
        super().__init__(reactor)
        fdesc.setNonBlocking(fd)
        self.fd = fd
        self.ended = ended
        self.handed = 0
        self.taken = 0

    @property
    def unsent(self) -> int:
        """Bytes handed to the pipe that it has not taken (so far, or ever once it has ended)."""
        return self.handed - self.taken

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes) -> None:
        """Buffer C{data} for the pipe; nothing is taken once it is closing or closed."""
        if not self.connected or self.disconnecting:
            return
        self.handed += len(data)
        super().write(data)

    def writeSomeData(self, data: bytes) -> int | BaseException:
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:  # EPIPE (the program closed its end) or worse: the pipe is over
            return main.CONNECTION_LOST
        self.taken += written
        return written

    def close(self) -> None:
        """End it now, whatever it still holds (the program has ended, or is being killed)."""
        if self.connected:
            self.connectionLost(Failure(main.CONNECTION_LOST))

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self.fd != -1:
            fd, self.fd = self.fd, -1
            os.close(fd)
            self.ended()


def start_with_pipe(reactor: Any, protocol: ProcessProtocol, executable: str, args: list[str],
                    child_fds: dict[int, str], **kw: Any) -> tuple[IProcessTransport, MessagePipe]:
    """
    C{reactor.spawnProcess} with C{child_fds} (not 0) and our own pipe as
    the child's descriptor 0; its end is told as the protocol's
    C{childConnectionLost(0)}, as for the reactor's own pipes.
    """
    read_end, write_end = os.pipe()
    try:
        transport = reactor.spawnProcess(protocol, executable, args, childFDs={0: read_end, **child_fds}, **kw)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return transport, MessagePipe(write_end, reactor, lambda: protocol.childConnectionLost(0))
