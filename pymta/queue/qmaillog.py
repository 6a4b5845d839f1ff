"""
qmail-send's log lines, written by pymta-send: one L{twisted.logger} event per
line, whose formatted text is exactly the line qmail-send would write (the
line itself is kept in the event's C{qmail_line} field, for tests and tools).

Every text the queue manager logs about a message is built here, so the
format that log analysers (qmailanalog and the like) read lives in one place.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger, LogLevel

from pymta.address import safe_log
from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.levellogger import Logger as LevelLogger
from pymta.queue.sendfiles import TodoEnvelope

__all__ = ["QmailLog", "guard"]


class QmailLog:
    """qmail-send's log, line by line."""

    def __init__(self, logger: Logger | None = None) -> None:
        self.logger = logger if logger is not None else LevelLogger(namespace="pymta.send")

    # -- plain lines ------------------------------------------------------------

    def line(self, text: str) -> None:
        # Logger.info in one call fewer: about eight lines per message
        self.logger.emit(LogLevel.info, "{qmail_line}", qmail_line=text)

    def warning(self, text: str) -> None:
        self.logger.warn("{qmail_line}", qmail_line="warning: " + text)

    def alert(self, text: str) -> None:
        self.logger.error("{qmail_line}", qmail_line="alert: " + text)

    # -- the life of a message ---------------------------------------------------

    def new_msg(self, message_id: int) -> None:
        self.line(f"new msg {message_id}")

    def info_msg(self, message_id: int, envelope: TodoEnvelope, size: int) -> None:
        self.line(
            f"info msg {message_id}: bytes {size} from <{safe_log(envelope.sender)}>"
            f" qp {envelope.pid} uid {envelope.uid}"
        )

    def starting_delivery(self, number: int, message_id: int, channel: str, address: str) -> None:
        self.line(f"starting delivery {number}: msg {message_id} to {channel} {safe_log(address)}")

    def delivery(self, number: int, status: str | None, text: str) -> None:
        """C{delivery N: success/deferral/failure: text}, or the mangled report (C{status} None)."""
        if status is None:
            self.line(f"delivery {number}: report mangled, will defer")
        elif status == SUCCESS:
            self.line(f"delivery {number}: success: {safe_log(text)}")
        elif status == DEFERRAL:
            self.line(f"delivery {number}: deferral: {safe_log(text)}")
        else:
            self.line(f"delivery {number}: failure: {safe_log(text)}")

    def end_msg(self, message_id: int) -> None:
        self.line(f"end msg {message_id}")

    def bounce_msg(self, message_id: int, qp: int) -> None:
        self.line(f"bounce msg {message_id} qp {qp}")

    def triple_bounce(self, message_id: int) -> None:
        self.line(f"triple bounce: discarding bounce/{message_id}")


def guard(log: QmailLog, what: str, f: Callable[..., Any], *args: Any) -> bool:
    """
    Run one step of pymta-send: an unexpected error is logged (an C{alert:}
    line and the traceback) and never kills the service.  False when it failed.
    """
    try:
        f(*args)
    except Exception as e:
        log.alert(f"internal error in {what}: {e!r}; continuing")
        log.logger.failure("pymta-send: internal error in {what}", what=what)
        return False
    return True
