# -*- test-case-name: tests.test_linedeadline -*-
"""
Deadlines per line, not per byte, for the servers' input (smtpd, pop3d).

qmail's servers wait C{timeout} seconds for each read, so a client that
sends one byte at a time keeps a session open for ever.  A L{LineDeadline}
gives a client C{seconds} to complete each line, counted from when the
server starts waiting for it:

  - L{LineDeadline.restart}: a new line starts now (greeting sent);
  - L{LineDeadline.received}: bytes arrived; only a line end (LF) starts
    the next line's period, other bytes change nothing;
  - L{LineDeadline.hold}: the server is busy (a queue commit, a password
    check, a mailbox child, a full queue buffer) and the time does not
    count against the client until the L{Hold} it returns is released.
    Holds are counted: the deadline runs again only when the last one is
    released, which gives the client a whole period; releasing a hold
    twice changes nothing;
  - L{LineDeadline.progress}: the server's output moved on (a long RETR
    being read): a whole period from now, unless held.

For a DATA phase, L{LineDeadline.start_data} adds a minimum average rate:
a message may take C{seconds} whatever its size; after that its bytes
since the start of the phase must average at least C{min_rate} bytes per
second (time held excluded), so a client dripping short lines cannot stretch
one message for ever either.

The timer is lazy: one C{callLater} that, when it fires, looks at the
current deadline and either calls C{expired(reason)} or sleeps again until
then.  Receiving data costs a counter update, not a timer reset.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["LineDeadline", "Hold", "LINE", "DATA_RATE"]

LINE = "line"  # a line was not complete within the period
DATA_RATE = "data rate"  # DATA fell below its minimum average rate


class Hold:
    """One reason the deadline is held (L{LineDeadline.hold}); L{release} it once the work is done."""

    def __init__(self, deadline: "LineDeadline") -> None:
        self._deadline: LineDeadline | None = deadline

    @property
    def active(self) -> bool:
        return self._deadline is not None

    def release(self) -> None:
        """The work is done; later calls change nothing."""
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline._released()


class LineDeadline:
    """
    One session's input deadline, driven by C{clock} (an IReactorTime such
    as C{task.Clock}); calls C{expired(reason)} once, with L{LINE} or
    L{DATA_RATE}, unless stopped.
    """

    def __init__(self, clock: Any, seconds: float, expired: Callable[[str], None]) -> None:
        self.clock = clock
        self.seconds = seconds
        self._expired = expired
        self._since = 0.0  # when the current line's period started
        self._held_at: float | None = None  # when the first of the current holds began; None when not held
        self._holds = 0  # holds not released yet
        self._started = False
        self._stopped = False  # for good
        self._call: Any = None
        self._min_rate = 0
        self._data_start = 0.0
        self._data_bytes = 0
        self._data_held = 0.0

    # -- the line --------------------------------------------------------

    def restart(self) -> None:
        """A new line's period starts now (the first call starts the deadline)."""
        self._since = self.clock.seconds()
        self._started = True
        self._schedule()

    def received(self, data: bytes) -> None:
        """Bytes from the client: a line end starts the next line's period, the bytes count for the data rate."""
        if self._min_rate:
            self._data_bytes += len(data)
        if b"\n" in data:
            self._since = self.clock.seconds()

    def hold(self) -> Hold:
        """The server works: no deadline until every hold is released."""
        if self._holds == 0:
            self._held_at = self.clock.seconds()
        self._holds += 1
        return Hold(self)

    def _released(self) -> None:
        self._holds -= 1
        if self._holds > 0:
            return
        if self._held_at is not None:
            self._data_held += self.clock.seconds() - self._held_at
            self._held_at = None
        self.restart()  # the server waits for the client again: a whole period

    def progress(self) -> None:
        """The server's output to the client moved on (a long RETR being read): a whole period from now, unless held."""
        if self._holds == 0:
            self.restart()

    @property
    def held(self) -> bool:
        return self._held_at is not None

    def stop(self) -> None:
        """No more deadline, for good (the connection is gone or closing): later calls change nothing."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    # -- DATA ---------------------------------------------------------------

    def start_data(self, min_rate: int) -> None:
        """A DATA phase starts now; C{min_rate} bytes per second after the first period (0: no rate check)."""
        self._min_rate = max(0, min_rate)
        self._data_start = self.clock.seconds()
        self._data_bytes = 0
        self._data_held = 0.0
        self.restart()

    def end_data(self) -> None:
        self._min_rate = 0

    # -- the timer ------------------------------------------------------------

    def due(self) -> tuple[float, str] | None:
        """When the client's time runs out and why, or None while held or stopped."""
        if not self._started or self._stopped or self._held_at is not None:
            return None
        when, reason = self._since + self.seconds, LINE
        if self._min_rate:
            allowed = max(self.seconds, self._data_bytes / self._min_rate)
            rate_when = self._data_start + self._data_held + allowed
            if rate_when < when:
                when, reason = rate_when, DATA_RATE
        return when, reason

    def _schedule(self) -> None:
        due = self.due()
        if due is None:
            return
        call = self._call
        if call is not None and call.active():
            if call.getTime() <= due[0]:
                return  # it fires first and looks again
            call.cancel()
        self._call = self.clock.callLater(max(0.0, due[0] - self.clock.seconds()), self._check)

    def _check(self) -> None:
        self._call = None
        due = self.due()
        if due is None:
            return
        if self.clock.seconds() >= due[0]:
            self.stop()
            self._expired(due[1])
        else:
            self._schedule()
