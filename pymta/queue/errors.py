# -*- test-case-name: tests.queue.test_store -*-
"""
qmail-queue's failures: exit codes and the texts callers show (see
docs/internals.md, 'qmail-queue exit codes').

Every way the queue can refuse a message is a L{QueueFailure}, a
L{QueueRefused} that also carries qmail-queue's exit code, so the same
error becomes a C{451}/C{554} reply in smtpd, a C{Z}/C{D} answer on the
inject socket and the exit status of C{pymta queue}.
"""

from __future__ import annotations

from pymta.interfaces import QueueRefused

__all__ = [
    "QueueFailure",
    "qq_text",
    "exit_code_for",
    "EXIT_OK",
    "EXIT_ADDRESS_TOO_LONG",
    "EXIT_PERMANENT_REFUSAL",
    "EXIT_NO_MEMORY",
    "EXIT_TIMEOUT",
    "EXIT_WRITE_ERROR",
    "EXIT_READ_ERROR",
    "EXIT_CONFIG",
    "EXIT_NETWORK",
    "EXIT_HOME",
    "EXIT_QUEUE_DIR",
    "EXIT_PID_FILE",
    "EXIT_MESS_FILE",
    "EXIT_INTD_FILE",
    "EXIT_TODO_FILE",
    "EXIT_TEMPORARY_REFUSAL",
    "EXIT_BUG",
    "EXIT_ENVELOPE_FORMAT",
]

EXIT_OK = 0
EXIT_ADDRESS_TOO_LONG = 11
EXIT_PERMANENT_REFUSAL = 31
EXIT_NO_MEMORY = 51
EXIT_TIMEOUT = 52
EXIT_WRITE_ERROR = 53
EXIT_READ_ERROR = 54
EXIT_CONFIG = 55
EXIT_NETWORK = 56
EXIT_HOME = 61
EXIT_QUEUE_DIR = 62
EXIT_PID_FILE = 63
EXIT_MESS_FILE = 64
EXIT_INTD_FILE = 65
EXIT_TODO_FILE = 66
EXIT_TEMPORARY_REFUSAL = 71
EXIT_BUG = 81
EXIT_ENVELOPE_FORMAT = 91

_TEXTS: dict[int, tuple[str, bool]] = {
    11: ("envelope address too long for qq (#5.1.3)", True),
    115: ("envelope address too long for qq (#5.1.3)", True),
    31: ("mail server permanently rejected message (#5.3.0)", True),
    51: ("qq out of memory (#4.3.0)", False),
    52: ("qq timeout (#4.3.0)", False),
    53: ("qq write error or disk full (#4.3.0)", False),
    54: ("qq read error (#4.3.0)", False),
    55: ("qq unable to read configuration (#4.3.0)", False),
    56: ("qq trouble making network connection (#4.3.0)", False),
    61: ("qq trouble in home directory (#4.3.0)", False),
    62: ("qq trouble creating files in queue (#4.3.0)", False),
    63: ("qq trouble creating files in queue (#4.3.0)", False),
    64: ("qq trouble creating files in queue (#4.3.0)", False),
    65: ("qq trouble creating files in queue (#4.3.0)", False),
    66: ("qq trouble creating files in queue (#4.3.0)", False),
    71: ("mail server temporarily rejected message (#4.3.0)", False),
    72: ("connection to mail server timed out (#4.4.1)", False),
    73: ("connection to mail server rejected (#4.4.1)", False),
    74: ("communication with mail server failed (#4.4.2)", False),
    81: ("qq internal bug (#4.3.0)", False),
    91: ("qq internal bug (#4.3.0)", False),
    120: ("unable to exec qq (#4.3.0)", False),
}


def qq_text(exit_code: int) -> tuple[str, bool]:
    """
    What a caller of qmail-queue reports for C{exit_code}: C{(text,
    permanent)}, the text without its C{D}/C{Z} letter.  Exit 0 is not a
    failure and is not accepted here.
    """
    if exit_code == 0:
        raise ValueError("exit code 0 is success")
    if exit_code in _TEXTS:
        return _TEXTS[exit_code]
    if 11 <= exit_code <= 40:
        return "qq permanent problem (#5.3.0)", True
    return "qq temporary problem (#4.3.0)", False


def exit_code_for(refusal: QueueRefused) -> int:
    """
    qmail-queue's exit code for a refusal: its own code when it has one,
    else the code whose text it carries, else 31 (permanent) or 71.
    """
    code = getattr(refusal, "exit_code", None)
    if isinstance(code, int) and code != 0:
        return code
    for candidate, (text, permanent) in sorted(_TEXTS.items()):
        if text == refusal.text and permanent == refusal.permanent:
            return candidate
    return EXIT_PERMANENT_REFUSAL if refusal.permanent else EXIT_TEMPORARY_REFUSAL


class QueueFailure(QueueRefused):
    """
    The queue refused a message for the reason qmail-queue's C{exit_code}
    stands for; C{detail} says what exactly happened (for logs, never for
    the remote side).
    """

    def __init__(self, exit_code: int, detail: str = "", text: str | None = None, permanent: bool | None = None) -> None:
        default_text, default_permanent = qq_text(exit_code)
        super().__init__(default_text if text is None else text, default_permanent if permanent is None else permanent)
        self.exit_code = exit_code
        self.detail = detail

    def __str__(self) -> str:
        if self.detail:
            return f"{self.text} [{self.detail}]"
        return self.text
