# -*- test-case-name: tests.cli.test_queue -*-
"""
C{pymta queue [--root DIR]}: qmail-queue's interface.

The message is read from fd 0 to its end, then the envelope from fd 1
(qmail-queue reads fd 1): C{F<sender>\\0}, C{T<rcpt>\\0}..., one more C{\\0}.
The message goes into the queue through the inject socket, or directly when
no queue manager listens and the caller may write the queue (see
L{pymta.queue.client}).  The exit status is qmail-queue's (docs/internals.md, 'qmail-queue exit codes'):
0 queued; 11 address too long; 31 permanent refusal; 53 write error or
disk full; 54 the message or envelope could not be read (also: envelope
ended before its final NUL); 55 configuration unreadable; 56 no queue
manager and no right to write the queue; 63-66 queue files could not be
created; 71 temporary refusal; 91 envelope format error.  A one-line reason
goes to stderr (qmail-queue itself is silent there).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import IO

from pymta.control import default_root
from pymta.interfaces import QueueRefused
from pymta.queue.client import enqueue
from pymta.queue.envelope import parse_qq_envelope
from pymta.queue.errors import EXIT_READ_ERROR, QueueFailure, exit_code_for

__all__ = ["main", "run", "read_message", "read_envelope"]

_READ = 65536
_SPOOL_IN_MEMORY = 1 << 20


def read_message(fd: int) -> IO[bytes]:
    """Fd 0 to its end, spooled (in memory up to 1 MB, then a temporary file)."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    while True:
        try:
            data = os.read(fd, _READ)
        except OSError as e:
            raise QueueFailure(EXIT_READ_ERROR, f"reading the message: {e.strerror}") from e
        if not data:
            break
        spool.write(data)
    spool.seek(0)
    return spool


def read_envelope(fd: int) -> tuple[str, list[str]]:
    """Read fd 1 up to the envelope's final NUL (not necessarily to EOF)."""
    buf = bytearray()
    eof = False
    while True:
        if buf[:1] == b"\0" or b"\0\0" in buf or eof:
            try:
                return parse_qq_envelope(bytes(buf))
            except QueueFailure as e:
                if eof or e.exit_code != EXIT_READ_ERROR:
                    raise
        try:
            data = os.read(fd, _READ)
        except OSError as e:
            raise QueueFailure(EXIT_READ_ERROR, f"reading the envelope: {e.strerror}") from e
        if not data:
            eof = True
        buf += data


def run(root: str, message_fd: int = 0, envelope_fd: int = 1) -> int:
    """Queue one message qmail-queue style; returns the exit status."""
    try:
        message = read_message(message_fd)
        sender, recipients = read_envelope(envelope_fd)
        enqueue(root, message, sender, recipients)
    except QueueRefused as e:
        sys.stderr.write(f"pymta queue: {e}\n")
        return exit_code_for(e)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta queue", description="qmail-queue: message on fd 0, envelope on fd 1")
    parser.add_argument("--root", default=None, help="pymta root directory (default $PYMTA_ROOT or /var/pymta)")
    args = parser.parse_args(argv)
    return run(args.root or default_root())
