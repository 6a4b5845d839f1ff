# -*- test-case-name: tests.test_levellogger -*-
"""
A C{twisted.logger.Logger} whose every event costs a few calls fewer.

Twisted's C{Logger.emit} first checks that the level is one of
C{LogLevel}'s constants by iterating over them, which sorts them each time:
about nine Python calls per event.  pymta writes some nine lines per
message (qmail's, smtpd's), so L{Logger} checks the level against a set of
the same constants, made once, and then builds the same event and hands it
to the same observer.  A level that is not one of them goes to Twisted's
own C{emit}, which reports it as it always has, and so does an event that
carries a C{log_trace}.
"""

from __future__ import annotations

import time

from twisted.logger import Logger as TwistedLogger, LogLevel

__all__ = ["Logger"]

_LEVELS = frozenset(LogLevel.iterconstants())


class Logger(TwistedLogger):
    """C{twisted.logger.Logger}, with its level check done by one set lookup."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level not in _LEVELS or "log_trace" in kwargs:
            super().emit(level, format, **kwargs)  # reported as Twisted does; a traced event records its hops there
            return
        kwargs.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),
        )
        self.observer(kwargs)
