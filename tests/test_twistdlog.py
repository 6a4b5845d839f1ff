"""Tests for pymta.twistdlog: twistd's text log lines, made cheaply, in twistd's place."""

from __future__ import annotations

import io
import os
import signal
import sys

from twisted.application.service import Application
from twisted.internet import defer
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)
from twisted.python import failure
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.scripts.twistd import ServerOptions
from twisted.trial import unittest

from pymta.logrotation import RotatingLogFile
from pymta.privileges import RootDroppingService
from pymta.twistdlog import ClassicLogFormat, fast_text_observer, twistd_observer

WHEN = 1_764_000_000.25


def twisted_text(event: dict) -> str | None:
    """What twistd's default observer writes for C{event}."""
    return formatEventAsClassicLogText(event, formatTime=lambda when: formatTime(when, timeFormatRFC3339))


def event(log_format: object = "{qmail_line}", **fields: object) -> dict:
    made = {
        "log_format": log_format,
        "log_time": WHEN,
        "log_namespace": "pymta.send",
        "log_level": LogLevel.info,
    }
    made.update(fields)
    return made


class _Shape:
    attribute = "an attribute"

    def __repr__(self) -> str:
        return "<a shape>"

    def call(self) -> str:
        return "called"


def _failure() -> Failure:
    try:
        1 / 0
    except ZeroDivisionError:
        return Failure()


class SameTextAsTwistdTests(unittest.SynchronousTestCase):
    """For each kind of event, the text is exactly what twistd's own observer makes."""

    def assertSame(self, made: dict) -> None:
        self.assertEqual(ClassicLogFormat()(made), twisted_text(made))

    def test_qmail_line(self) -> None:
        made = event(qmail_line="delivery 12: success: did_0+0+1/")
        self.assertSame(made)
        self.assertEqual(
            ClassicLogFormat()(made), formatTime(WHEN) + " [pymta.send#info] delivery 12: success: did_0+0+1/\n"
        )

    def test_several_fields_literals_and_braces(self) -> None:
        self.assertSame(event("{{literal}} {a} and {b}: {c}%", a=1, b=2.5, c=None))

    def test_newlines_are_indented(self) -> None:
        self.assertSame(event(qmail_line="first\nsecond\nthird"))

    def test_system_given(self) -> None:
        self.assertSame(event(qmail_line="x", log_system="SMTPFactory,3,127.0.0.1"))

    def test_no_level_no_namespace(self) -> None:
        made = event(qmail_line="x")
        del made["log_level"], made["log_namespace"]
        self.assertSame(made)

    def test_fields_twisted_handles_specially(self) -> None:
        shape = _Shape()
        for fmt in ("{shape!r}", "{shape.attribute}", "{shape.call()}", "{n:>5}", "{0}", "{missing}", "{unclosed"):
            with self.subTest(fmt=fmt):
                self.assertSame(event(fmt, shape=shape, n=7))

    def test_failure_with_traceback(self) -> None:
        self.assertSame(event("it broke: {why}", why="badly", log_failure=_failure()))

    def test_empty_and_absent_formats(self) -> None:
        self.assertIsNone(ClassicLogFormat()(event("")))
        self.assertIsNone(ClassicLogFormat()(event(None)))
        self.assertSame(event(b"bytes {x}", x=1))

    def test_no_time(self) -> None:
        made = event(qmail_line="x")
        del made["log_time"]
        self.assertSame(made)

    def test_time_stamp_follows_the_clock(self) -> None:
        formatter = ClassicLogFormat()
        for when in (WHEN, WHEN + 0.5, WHEN + 1, WHEN + 61.75, WHEN + 3600 * 24 * 183, 1_764_000_000.9999997,
                     704.9999995, 704.9999994, 0.0, -0.5, -1.0000004, -1.0000006):
            with self.subTest(when=when):
                made = event(qmail_line="tick", log_time=when)
                self.assertEqual(formatter(made), twisted_text(made))

    def test_time_stamp_of_one_formatter_across_the_end_of_a_second(self) -> None:
        """The stamp kept from the line before is used only where no rounding can reach the next second."""
        formatter = ClassicLogFormat()
        for when in (WHEN, WHEN + 0.7499989, WHEN + 0.7499995, WHEN + 0.75, WHEN + 0.76, 704.1, 704.999998,
                     704.9999994, 704.9999995, 705.0, -2.5, -1.0000006, -1.0000004, -0.9999999):
            with self.subTest(when=when):
                made = event(qmail_line="tick", log_time=when)
                self.assertEqual(formatter(made), twisted_text(made))

    def test_time_zone_offsets(self) -> None:
        """A zone with daylight saving time: each side of the change gets its own offset."""
        if not hasattr(__import__("time"), "tzset"):
            raise unittest.SkipTest("no time.tzset")
        import time

        old = os.environ.get("TZ")

        def restore() -> None:
            if old is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = old
            time.tzset()

        self.addCleanup(restore)
        os.environ["TZ"] = "Europe/Berlin"
        time.tzset()
        formatter = ClassicLogFormat()
        change = 1_774_746_000  # 2026-03-29 01:00 UTC: Berlin goes from +0100 to +0200
        for when in (change - 1.0, change + 0.0, change + 1.0):
            made = event(qmail_line="tick", log_time=when)
            self.assertEqual(formatter(made), twisted_text(made))
        self.assertNotEqual(formatter(event(qmail_line="a", log_time=change - 1.0))[19:24],
                            formatter(event(qmail_line="a", log_time=change + 1.0))[19:24])

    def test_through_a_logger(self) -> None:
        out = io.StringIO()
        Logger(namespace="pymta.test", observer=fast_text_observer(out)).warn("{what} happened", what="it")
        self.assertRegex(out.getvalue(), r"^\S+ \[pymta\.test#warn\] it happened\n$")


class TwistdObserverTests(unittest.SynchronousTestCase):
    """The destination is the one twistd's Unix logger picks for the same options."""

    def options(self, *argv: str) -> ServerOptions:
        options = ServerOptions()
        if "--debug" in argv:
            # twistd's --debug turns on Failure's debug mode for the whole process: any later Failure
            # of a test in this process would stop in pdb and hang the run
            self.addCleanup(defer.setDebugging, defer.getDebugging())
            self.patch(failure.Failure, "__init__", failure.Failure.__init__)  # restored after the test
        options.parseOptions(list(argv))
        return options

    def test_not_twistd(self) -> None:
        self.assertIsNone(twistd_observer(None))
        self.assertIsNone(twistd_observer({"logfile": "x", "nodaemon": True}))

    def test_nodaemon_logs_to_stdout(self) -> None:
        for argv in (["--nodaemon"], ["--nodaemon", "--logfile", "-"]):
            observer = twistd_observer(self.options(*argv))
            self.assertIsInstance(observer, FileLogObserver)
            self.assertIs(observer._outFile, sys.stdout)

    def test_other_observers_left_to_twistd(self) -> None:
        for argv in (["--syslog"], ["--logger", "twisted.logger.textFileLogObserver"], ["--logfile", "-"], ["--debug"],
                     ["--debug", "--logfile", "-"]):
            with self.subTest(argv=argv):
                self.assertIsNone(twistd_observer(self.options(*argv)))

    def test_log_file_written_and_rotated_on_usr1(self) -> None:
        previous = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        path = os.path.abspath(self.mktemp())
        opened: list[LogFile] = []

        def open_log(name: str) -> LogFile:
            opened.append(LogFile.fromFullPath(name))
            return opened[-1]

        observer = twistd_observer(self.options("--logfile", path), open_log=open_log)
        self.addCleanup(opened[0].close)
        self.assertEqual(opened[0].path, path)
        observer(event(qmail_line="new msg 42"))
        with open(path) as f:
            self.assertTrue(f.read().endswith(" [pymta.send#info] new msg 42\n"))
        self.assertNotEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)

    def test_rotating_log_file_gets_each_line_at_once(self) -> None:
        """pymta's own log file is unbuffered: each line is on disk after its write, with no flush call."""
        previous = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        path = os.path.abspath(self.mktemp())
        opened: list[RotatingLogFile] = []

        def open_log(name: str) -> RotatingLogFile:
            opened.append(RotatingLogFile.fromFullPath(name))
            return opened[-1]

        observer = twistd_observer(self.options("--logfile", path), open_log=open_log)
        assert observer is not None
        self.addCleanup(opened[0].close)
        flushes: list[None] = []
        self.patch(opened[0], "flush", lambda: flushes.append(None))
        observer(event(qmail_line="new msg 42"))
        observer(event(qmail_line="end msg 42"))
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual([line.split("] ", 1)[1] for line in lines], ["new msg 42", "end msg 42"])
        self.assertEqual((flushes, opened[0].size), ([], os.path.getsize(path)))

    def test_daemon_without_logfile_uses_twistd_log(self) -> None:
        names: list[str] = []

        def open_log(name: str) -> LogFile:
            names.append(name)
            log_file = LogFile.fromFullPath(os.path.abspath(self.mktemp()))
            self.addCleanup(log_file.close)
            return log_file

        previous = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        self.assertIsNotNone(twistd_observer(self.options(), open_log=open_log))
        self.assertEqual(names, ["twistd.log"])

    def test_existing_usr1_handler_kept(self) -> None:
        def mine(signum: int, frame: object) -> None:
            pass

        previous = signal.signal(signal.SIGUSR1, mine)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        observer = twistd_observer(self.options("--logfile", os.path.abspath(self.mktemp())))
        self.addCleanup(observer._outFile.close)
        self.assertIs(signal.getsignal(signal.SIGUSR1), mine)


class ApplicationComponentTests(unittest.SynchronousTestCase):
    def test_observer_becomes_the_applications(self) -> None:
        observer = fast_text_observer(io.StringIO())
        application = Application("pymta-test")
        RootDroppingService("/nonexistent", log_observer=observer).setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), observer)

    def test_an_applications_own_observer_stands(self) -> None:
        application = Application("pymta-test")
        theirs = fast_text_observer(io.StringIO())
        application.setComponent(ILogObserver, theirs)
        RootDroppingService("/nonexistent", log_observer=fast_text_observer(io.StringIO())).setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), theirs)

    def test_none_sets_nothing(self) -> None:
        application = Application("pymta-test")
        RootDroppingService("/nonexistent").setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))
