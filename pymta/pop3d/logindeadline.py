# -*- test-case-name: tests.pop3d.test_logindeadline -*-
"""
How long a POP3 session may stay in the AUTHORIZATION state.

The deadline per command line (L{pymta.linedeadline}) lets a client that
sends NOOP or CAPA before each deadline keep a session for ever without
logging in; with per-address connection limits a few addresses could then
hold every slot.  A L{LoginDeadline} gives the session C{seconds} from
the greeting to log in, whatever it sends meanwhile (Dovecot's login
processes give 3 minutes).  Only the client's time counts: when the
deadline passes while a login command is being checked (a slow password
hash, a checkpassword program, the login limiter's delays), the check
finishes first and the session ends only if it did not log in.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["LoginDeadline", "LOGIN_WITHIN_SECONDS", "REPLY_TOO_SLOW"]

LOGIN_WITHIN_SECONDS = 120.0
REPLY_TOO_SLOW = b"too slow to log in, closing"


class LoginDeadline:
    """One session's login deadline on C{clock}; calls C{expired()} once, unless stopped first."""

    def __init__(self, clock: Any, seconds: float, expired: Callable[[], None]) -> None:
        self.clock = clock
        self.seconds = seconds
        self._expired = expired
        self._call: Any = None
        self._held = False
        self._due = False
        self._stopped = False

    def start(self) -> None:
        """The session was greeted: the time to log in starts now."""
        if not self._stopped and self._call is None:
            self._call = self.clock.callLater(self.seconds, self._fire)

    def hold(self) -> None:
        """A command is being worked on: an expiry waits for L{release}."""
        self._held = True

    def release(self) -> None:
        """The command was answered: expire now if the time ran out meanwhile."""
        self._held = False
        if self._due and not self._stopped:
            self._end()

    def stop(self) -> None:
        """Logged in, or the connection is gone: no expiry, for good."""
        self._stopped = True
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _fire(self) -> None:
        self._call = None
        if self._held:
            self._due = True
        else:
            self._end()

    def _end(self) -> None:
        self.stop()
        self._expired()
