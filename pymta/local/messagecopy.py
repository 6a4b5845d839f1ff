# -*- test-case-name: tests.local.test_messagecopy -*-
"""
How a file delivery copies the queued message into the mailbox file.

qmail-local reads the message and writes it: L{ChunkCopy}, the plain path
and the default, passes the message's chunks through this process.
L{KernelCopy} asks the kernel to copy the queue's message file into the
mailbox file (C{copy_file_range}): the bytes never pass through this
process, two copies and a system call pair per 64 KB fewer.  Where the
kernel cannot (another file system, an old kernel) it says so before it
copies anything, and the copy goes the plain way instead.

Either way the bytes written are the message exactly as queued; the
caller writes its own lines before and fsyncs after, as before.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Protocol, runtime_checkable

from pymta.local.envelope import read_chunks
from pymta.local.errors import guard_reads

__all__ = ["MessageCopy", "ChunkCopy", "KernelCopy", "message_copy"]

#: what one copy_file_range asks for (the kernel copies at most this much per call)
COPY_BYTES = 1 << 30

#: the kernel cannot copy between these files: take the plain path (nothing has been copied yet)
_CANNOT = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF})


@runtime_checkable
class MessageCopy(Protocol):
    """Writes the whole message into an open mailbox file, at its position."""

    def copy_to(self, out: BinaryIO) -> None:
        """
        Append the message to C{out}.  A read error is a L{DeliveryFailure}
        ("Unable to read message"); a write error is an C{OSError}.
        """


@dataclass(frozen=True)
class ChunkCopy:
    """qmail-local's copy: each chunk read, then written through C{out}'s buffer."""

    chunks: Iterable[bytes]

    def copy_to(self, out: BinaryIO) -> None:
        for chunk in guard_reads(self.chunks):
            out.write(chunk)


@dataclass(frozen=True)
class KernelCopy:
    """The whole file behind C{fd} (from offset 0) copied by the kernel; the plain path where it cannot."""

    fd: int

    def copy_to(self, out: BinaryIO) -> None:
        out.flush()  # the caller's lines first: the kernel writes at the descriptor's position
        target = out.fileno()
        size = os.fstat(self.fd).st_size
        offset = 0
        while True:
            try:
                copied = os.copy_file_range(self.fd, target, COPY_BYTES, offset)
            except OSError as e:
                if offset == 0 and e.errno in _CANNOT:
                    ChunkCopy(read_chunks(self.fd)).copy_to(out)
                    return
                raise
            if copied == 0:
                break
            offset += copied
        if offset == 0 and size > 0:
            # a kernel or file system that copies nothing without saying why: the plain path
            ChunkCopy(read_chunks(self.fd)).copy_to(out)
        elif offset != size:
            # never a delivery that says done with part of the message: it defers instead
            raise OSError(errno.EIO, f"copied {offset} of the message's {size} bytes")


def message_copy(fd: int) -> MessageCopy:
    """The copy of the message file C{fd} a Maildir delivery uses: the kernel's where the platform has it."""
    if hasattr(os, "copy_file_range"):
        return KernelCopy(fd)
    return ChunkCopy(read_chunks(fd))
