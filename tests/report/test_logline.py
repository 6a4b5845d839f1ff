"""Tests for pymta.report.logline: time stamps and qmail-send's lines read back."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.logger import ILogObserver, Logger, LogEvent, LogLevel
from zope.interface import provider
from twisted.trial.unittest import SynchronousTestCase

from pymta import interfaces
from pymta.queue.qmaillog import QmailLog
from pymta.queue.sendfiles import TodoEnvelope
from pymta.report.logline import (
    DEFERRAL,
    FAILURE,
    MANGLED_REASON,
    SUCCESS,
    BounceQueued,
    DeliveryResult,
    DeliveryStart,
    LineReader,
    MessageEnd,
    MessageInfo,
    NewMessage,
    NewRun,
    parse_text,
)
from pymta.twistdlog import ClassicLogFormat

WHEN = datetime(2026, 5, 1, 10, 0, 2, tzinfo=timezone.utc).timestamp()


class ParseTextTests(SynchronousTestCase):
    def test_every_line_qmaillog_writes(self) -> None:
        # the lines come from pymta-send's own writer, so the reader follows the writer
        lines: list[str] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            lines.append(event["qmail_line"])

        log = QmailLog(Logger(namespace="pymta.send", observer=observe))
        envelope = TodoEnvelope(uid=0, pid=77, sender="a@example.org", recipients=("b@example.org",))
        log.new_msg(12)
        log.info_msg(12, envelope, 345)
        log.starting_delivery(3, 12, "remote", "b@example.org")
        log.delivery(3, interfaces.SUCCESS, "ok 1 2\nthere")
        log.delivery(4, interfaces.DEFERRAL, "later")
        log.delivery(5, interfaces.FAILURE, "no")
        log.delivery(6, None, "")
        log.bounce_msg(12, 99)
        log.end_msg(12)
        log.line("status: exiting")
        self.assertEqual([parse_text(text) for text in lines], [
            NewMessage(12),
            MessageInfo(12, 345, "a@example.org"),
            DeliveryStart(3, 12, "remote", "b@example.org"),
            DeliveryResult(3, SUCCESS, "ok_1_2/there"),
            DeliveryResult(4, DEFERRAL, "later"),
            DeliveryResult(5, FAILURE, "no"),
            DeliveryResult(6, DEFERRAL, MANGLED_REASON),
            BounceQueued(12),
            MessageEnd(12),
            NewRun(),
        ])

    def test_bounce_sender_and_twistd_start(self) -> None:
        self.assertEqual(parse_text("info msg 5: bytes 10 from <> qp 5 uid 4242"), MessageInfo(5, 10, ""))
        self.assertEqual(parse_text("twistd 26.10.0 (/venv/bin/python3 3.11.7) starting up."), NewRun())

    def test_a_result_that_names_its_message(self) -> None:
        self.assertEqual(parse_text("delivery 7: msg 12 deferral: busy"), DeliveryResult(7, DEFERRAL, "busy"))
        self.assertEqual(parse_text("delivery 7: msg 12: failure: no"), DeliveryResult(7, FAILURE, "no"))

    def test_texts_with_and_without_the_final_slash(self) -> None:
        # before issue 17 pymta logged its own texts without qmail's final "/": both read
        self.assertEqual(parse_text("delivery 8: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)"),
                         DeliveryResult(8, FAILURE, "Sorry,_no_mailbox_here_by_that_name._(#5.1.1)"))
        self.assertEqual(parse_text("delivery 8: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"),
                         DeliveryResult(8, FAILURE, "Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"))
        self.assertEqual(parse_text("delivery 2: deferral: no_local_delivery_channel_is_installed_(#4.3.0)/"),
                         DeliveryResult(2, DEFERRAL, "no_local_delivery_channel_is_installed_(#4.3.0)/"))

    def test_other_lines_are_nothing(self) -> None:
        for text in [
            "status: local 0/10 remote 0/20",
            "status: local 0/10 remote 0/20 exitasap",
            "smtpd: ok 127.0.0.1 -> 127.0.0.1",
            "new msg",
            "new msg x12",
            "new msg 12 and more",
            "info msg 12: bytes many from <a@b> qp 1 uid 0",
            "starting delivery 1: msg 2 to elsewhere x@y",
            "delivery 1: maybe: hmm",
            "end msg 99999999999999999999999",
            "warning: msg 5 quarantined in quarantine/5: bad",
            "",
            "\x00\x01\ufffd",
        ]:
            self.assertIsNone(parse_text(text), text)


class LineReaderTests(SynchronousTestCase):
    def test_twistd_line_as_pymta_writes_it(self) -> None:
        formatted = ClassicLogFormat()({
            "log_format": "{qmail_line}", "qmail_line": "end msg 42", "log_time": WHEN + 0.7,
            "log_namespace": "pymta.send", "log_level": LogLevel.info,
        })
        assert formatted is not None
        when, event = LineReader().read(formatted) or (None, None)
        self.assertEqual(event, MessageEnd(42))
        # twistd's stamp has whole seconds, in the local zone with its offset: the same instant
        self.assertEqual(when, float(int(WHEN)))

    def test_time_zones(self) -> None:
        reader = LineReader()
        self.assertEqual(reader.read("2026-05-01T12:00:02+0200 [pymta.send#info] end msg 1\n"), (WHEN, MessageEnd(1)))
        self.assertEqual(reader.read("2026-05-01T10:00:02Z [-] end msg 2"), (WHEN, MessageEnd(2)))
        self.assertEqual(reader.read("2026-05-01T10:00:02+0000 [x] end msg 3\r\n"), (WHEN, MessageEnd(3)))

    def test_multilog_tai64n(self) -> None:
        label = "@%016x%08x" % (2**62 + 10 + int(WHEN), 500_000_000)
        self.assertEqual(LineReader().read(f"{label} new msg 9\n"), (WHEN + 0.5, NewMessage(9)))

    def test_garbage(self) -> None:
        reader = LineReader()
        for line in [
            "new msg 5",  # no time stamp
            "2026-05-01T10:00:02+0000 new msg 5",  # no system field
            "2026-13-45T10:00:02+0000 [pymta.send#info] new msg 5",  # no such date
            "2026-05-01T10:00:02+0000 [pymta.send#info] Traceback (most recent call last):",
            "\tFile \"x.py\", line 1, in <module>",
            "2026-05-01T10:00:02+0000 [pymta.send#info] new m",  # cut in half
            "@4000zz new msg 5",
            "\x00" * 100,
        ]:
            self.assertIsNone(reader.read(line), line)
        # and a good line after garbage is read as usual
        self.assertEqual(reader.read("2026-05-01T10:00:02+0000 [a] new msg 5"), (WHEN, NewMessage(5)))

