# -*- test-case-name: tests.test_twistdlog -*-
"""
The log observer pymta's twistd plugins hand to twistd: the text twistd
writes by default, to the same place, formatted for a fraction of the cost.

twistd's default observer (C{textFileLogObserver}) works out the local time
zone and runs C{strftime} for every line, and parses the event's format
string every time.  pymta-send writes about eight qmail log lines per
message, so at a thousand messages a second that formatting was a quarter of
pymta-send's Python time.  L{ClassicLogFormat} makes the same text: the
time stamp is computed once per second (the format has no finer field, and
a time zone offset changes only on a whole second), a format string made of
plain C{{name}} fields is parsed once and kept, and everything else (a
traceback, a C{{call()}} or C{{a.b}} field, a missing key, a flattened
event) goes through Twisted's own C{formatEventAsClassicLogText}.  Every line
is still written and flushed on its own, as twistd does.

L{twistd_observer} chooses the destination exactly as twistd's Unix logger
does for the options given (C{--logfile}, C{--nodaemon}), rotation by size
and on SIGUSR1 included (through L{pymta.logrotation.RotatingLogFile}, which
keeps rotation working after the privilege drop); with C{--syslog} or
C{--logger} it returns None and twistd's own choice stands.  L{pymta.privileges.RootDroppingService} gives
the observer to the twistd application it joins (as its C{ILogObserver}
component, Twisted's documented way to choose an application's observer).
"""

from __future__ import annotations

import math
import os
import signal
import string
import sys
from typing import Any, Callable, cast

from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import FileLogObserver, LogEvent, formatEventAsClassicLogText, formatTime, timeFormatRFC3339
from twisted.python import logfile

from pymta.logrotation import RotatingLogFile, UnsafeFile

__all__ = ["ClassicLogFormat", "TwistdFileObserver", "fast_text_observer", "twistd_observer"]

#: a format string made of literal text and plain fields: [(literal, field name or None), ...]
_Parsed = list[tuple[str, str | None]]

_MAX_FORMATS = 1024

#: a time stamp at least this far before the next second cannot round up into it (see L{ClassicLogFormat._time})
_SAME_SECOND = 0.999999


def _plain_fields(format_string: str) -> _Parsed | None:
    """The parts of C{format_string} when every field is a plain C{{name}}; None otherwise."""
    parts: _Parsed = []
    try:
        for literal, field, spec, conversion in string.Formatter().parse(format_string):
            if field is None:
                parts.append((literal, None))
                continue
            if spec or conversion or not field.isidentifier():
                return None
            parts.append((literal, field))
    except ValueError:
        return None
    return parts


class ClassicLogFormat:
    """
    Formats an event as twistd's text log does
    (C{formatEventAsClassicLogText} with RFC 3339 time stamps), caching the
    time stamp per second and the parse of plain format strings.
    """

    def __init__(self, time_format: str = timeFormatRFC3339) -> None:
        self.time_format = time_format
        #: (second, its time stamp): one object, so a thread never pairs one second with another's stamp
        self._stamp: tuple[int, str] | None = None
        #: the parse of each format string seen; a lone plain field (qmail's C{{qmail_line}}) is kept as its name
        self._formats: dict[str, _Parsed | str | None] = {}

    def _time(self, when: float) -> str:
        cached = self._stamp
        if cached is not None and cached[0] <= when < cached[0] + _SAME_SECOND:
            return cached[1]  # the second of the line before, far enough from the next one
        # the second datetime.fromtimestamp shows: it rounds the fraction to microseconds first
        fraction, whole = math.modf(when)
        micros = round(fraction * 1e6)
        second = int(whole) + (1 if micros >= 1_000_000 else -1 if micros < 0 else 0)
        if cached is None or cached[0] != second:
            cached = self._stamp = (second, formatTime(second, self.time_format))
        return cached[1]

    def _slow(self, event: LogEvent) -> str | None:
        return formatEventAsClassicLogText(event, formatTime=lambda when: formatTime(when, self.time_format))

    def __call__(self, event: LogEvent) -> str | None:
        format_string = event.get("log_format")
        when = event.get("log_time")
        if (
            type(format_string) is not str
            or type(when) is not float
            or "log_failure" in event
            or "log_flattened" in event
        ):
            return self._slow(event)
        try:
            parts = self._formats[format_string]
        except KeyError:
            parts = _plain_fields(format_string)
            if parts is not None and len(parts) == 1 and parts[0][0] == "" and parts[0][1] is not None:
                parts = parts[0][1]
            if len(self._formats) < _MAX_FORMATS:
                self._formats[format_string] = parts
        if parts is None:
            return self._slow(event)
        try:
            if isinstance(parts, str):
                text = event[parts]
                if type(text) is not str:  # a str formats as itself: qmail's lines skip the call
                    text = format(text, "")
            else:
                text = "".join([literal if name is None else literal + format(event[name], "") for literal, name in parts])
        except BaseException:
            # Twisted's formatter catches everything too (and says so in the line)
            return self._slow(event)
        if not text:
            return None
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
        elif type(system) is not str:
            return self._slow(event)
        cached = self._stamp  # L{_time}'s first test, without its call for every line of the same second
        stamp = cached[1] if cached is not None and cached[0] <= when < cached[0] + _SAME_SECOND else self._time(when)
        return f"{stamp} [{system}] {text}".replace("\n", "\n\t") + "\n"


class TwistdFileObserver(FileLogObserver):
    """A C{FileLogObserver} that knows its log file, when it writes to one (for L{pymta.privileges})."""

    def __init__(self, out_file: Any, log_file: logfile.LogFile | None = None) -> None:
        super().__init__(out_file, ClassicLogFormat())
        self.log_file = log_file
        #: a L{RotatingLogFile} writes each line straight to its descriptor (it opens it unbuffered):
        #: the flush C{FileLogObserver} makes after every line would do nothing but cost two calls
        self._unbuffered = log_file if isinstance(log_file, RotatingLogFile) and log_file is out_file else None

    def __call__(self, event: LogEvent) -> None:
        log_file = self._unbuffered
        if log_file is None or self._encoding is not None:
            super().__call__(event)
            return
        text = self.formatEvent(event)
        if text:
            log_file.write(text)


def fast_text_observer(out_file: Any) -> FileLogObserver:
    """A C{FileLogObserver} writing twistd's text lines to C{out_file} (see L{ClassicLogFormat})."""
    return TwistdFileObserver(out_file)


def _rotate_on_usr1(log_file: logfile.LogFile) -> None:
    """
    Rotate C{log_file} on SIGUSR1 unless something else handles it (as twistd
    does); a L{RotatingLogFile} decides itself what SIGUSR1 means.
    """
    if signal.getsignal(signal.SIGUSR1):
        return
    action = log_file.on_usr1 if isinstance(log_file, RotatingLogFile) else log_file.rotate

    def rotate(signum: int, frame: Any) -> None:
        from twisted.internet import reactor

        # Twisted types the global reactor without IReactorFromThreads, which every reactor provides
        cast(IReactorFromThreads, reactor).callFromThread(action)

    signal.signal(signal.SIGUSR1, rotate)


def twistd_observer(
    twistd_options: Any, open_log: Callable[[str], logfile.LogFile] = RotatingLogFile.fromFullPath
) -> FileLogObserver | None:
    """
    The observer twistd would make from C{twistd_options} (its
    C{ServerOptions}), with L{ClassicLogFormat}; None when the options are not
    twistd's or choose another observer (C{--logger}, C{--syslog}, or
    C{--logfile -} without C{--nodaemon}, which twistd refuses itself), and
    with C{--debug}, which changes C{nodaemon} after twistd's logger read it.
    A log file that cannot be opened (or that pymta refuses to open, see
    L{pymta.logrotation}) is C{SystemExit} with one line.
    """
    from twisted.application.app import ServerOptions

    if not isinstance(twistd_options, ServerOptions):
        return None
    if twistd_options.get("logger") or twistd_options.get("syslog") or twistd_options.get("debug"):
        # --debug: twistd's logger chose its destination before --debug turned "nodaemon" on
        return None
    name = twistd_options.get("logfile") or ""
    nodaemon = bool(twistd_options.get("nodaemon"))
    if name == "-":
        return fast_text_observer(sys.stdout) if nodaemon else None
    if nodaemon and not name:
        return fast_text_observer(sys.stdout)
    try:
        log_file = open_log(name or "twistd.log")
    except OSError as e:
        # a symbolic link at the name (pymta.ownfile), a missing directory...: one line, no traceback
        program = getattr(twistd_options, "subCommand", None) or "twistd"
        reason = str(e) if isinstance(e, UnsafeFile) else f"{os.path.abspath(name or 'twistd.log')}: {e.strerror or e}"
        raise SystemExit(f"{program}: cannot open the log file: {reason}") from None
    _rotate_on_usr1(log_file)
    return TwistdFileObserver(log_file, log_file)
