# -*- test-case-name: tests.qmailqueue.test_outcome -*-
"""
What the end of a C{QMAILQUEUE} program means, as qmail's C{qmail_close}
reads it (docs/internals.md, 'qmail-queue exit codes'): exit 0 is a
queued message, unless the message or the envelope could not be written
to it all (then qmail-queue's read error); exit 82 with C{D} or C{Z} and a
text on descriptor 6 is that reply; a program killed by a signal
crashed; any other exit is L{pymta.queue.errors.qq_text}'s.
"""

from __future__ import annotations

from pymta.queue.errors import EXIT_READ_ERROR, EXIT_TEMPORARY_REFUSAL, QueueFailure

__all__ = ["EXIT_CUSTOM", "CUSTOM_REPLY_BYTES", "program_failure", "custom_reply"]

#: the exit code whose reply the program wrote to descriptor 6
EXIT_CUSTOM = 82
#: how much of descriptor 6 is read
CUSTOM_REPLY_BYTES = 255


def custom_reply(data: bytes) -> tuple[str, bool] | None:
    """
    C{(text, permanent)} of a C{D...} or C{Z...} reply a program wrote to
    descriptor 6 (its first line, at most L{CUSTOM_REPLY_BYTES}, other
    than printable ASCII shown as C{?}), or None when it is not one.
    """
    line = data[:CUSTOM_REPLY_BYTES].split(b"\n", 1)[0].split(b"\r", 1)[0].split(b"\0", 1)[0]
    if len(line) <= 2 or line[:1] not in (b"D", b"Z"):
        return None
    text = "".join(chr(c) if 32 <= c <= 126 else "?" for c in line[1:])
    return text, line[:1] == b"D"


def program_failure(exit_code: int | None, signal: int | None, custom: bytes = b"",
                    complete: bool = True) -> QueueFailure | None:
    """
    None when the program queued the message (exit 0 after it was given
    the whole message and envelope), else the failure to report.
    C{exit_code} is None when the program was killed by C{signal}.
    """
    if exit_code is None:
        return QueueFailure(EXIT_TEMPORARY_REFUSAL, f"QMAILQUEUE program killed by signal {signal}",
                            text="qq crashed (#4.3.0)", permanent=False)
    if exit_code == 0:
        if complete:
            return None
        return QueueFailure(EXIT_READ_ERROR, "QMAILQUEUE program exited 0 before it was given the whole message")
    if exit_code == EXIT_CUSTOM:
        reply = custom_reply(custom)
        if reply is not None:
            return QueueFailure(EXIT_CUSTOM, "QMAILQUEUE program's own reply", text=reply[0], permanent=reply[1])
    return QueueFailure(exit_code, f"QMAILQUEUE program exited {exit_code}")
