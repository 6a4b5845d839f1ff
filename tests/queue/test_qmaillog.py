"""
Tests for pymta.queue.qmaillog: qmail-send's delivery lines, byte for byte.

qmail's delivery texts end with a newline, which the log shows as a final
C{/}; a program's own output is logged as the program wrote it.  The texts
here come from the code that makes them (local delivery, the remote
channel's reports), not from copies.
"""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.trial import unittest

from pymta.interfaces import FAILURE, SUCCESS
from pymta.local.deliver import LocalDelivery, deliver_local
from pymta.local.errors import DeliveryFailure, printed
from pymta.queue.qmaillog import QmailLog
from pymta.remote.channel import combine_report
from pymta.remote.client import REFUSED
from tests.local.helpers import make_home, open_message, user, write_file


class Recorder:
    """A Logger observer keeping each qmail line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: dict) -> None:
        self.lines.append(event["qmail_line"])


class DeliveryLineTests(unittest.TestCase):
    def setUp(self) -> None:
        self.recorder = Recorder()
        self.log = QmailLog(Logger(namespace="test.qmaillog", observer=self.recorder))
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        self.home = make_home(os.path.join(base, "home"))
        self.fd = open_message(os.path.join(base, "mess"))
        self.addCleanup(os.close, self.fd)

    def local(self, ext: str = "", dotqmail: str | None = None):  # type: ignore[no-untyped-def]
        if dotqmail is not None:
            write_file(os.path.join(self.home, ".qmail-" + ext), dotqmail, 0o644)
        request = LocalDelivery("a@example.com", "joe-" + ext if ext else "joe", "example.org",
                                user(self.home, "-" if ext else "", ext), "./Maildir/\n")
        return deliver_local(request, self.fd, lock_timeout=0.3, now=1795556971.0)

    def logged(self, number: int, status: str, text: str) -> bytes:
        self.recorder.lines.clear()
        self.log.delivery(number, status, text)
        [line] = self.recorder.lines
        return line.encode("ascii")

    def test_no_mailbox_failure_ends_with_slash(self) -> None:
        outcome = self.local("nothing")
        self.assertEqual(self.logged(8, outcome.status, outcome.report_text()),
                         b"delivery 8: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/")

    def test_local_success(self) -> None:
        outcome = self.local()
        self.assertEqual(self.logged(1, outcome.status, outcome.report_text()), b"delivery 1: success: did_1+0+0/")

    def test_deferral_text_ends_with_slash(self) -> None:
        outcome = self.local("mbox", "./nodir/mbox\n")
        self.assertEqual(self.logged(2, outcome.status, outcome.report_text()),
                         b"delivery 2: deferral: Unable_to_open_./nodir/mbox:_No_such_file_or_directory._(#4.2.1)/")

    def test_program_output_is_logged_as_written(self) -> None:
        # qmail passes a program's output on untouched: no newline, no slash
        outcome = self.local("prog", "|printf 'no such list'; exit 100\n")
        self.assertEqual(self.logged(3, outcome.status, outcome.report_text()),
                         b"delivery 3: failure: no_such_list")
        outcome = self.local("prog2", "|echo no such list; exit 111\n")
        self.assertEqual(self.logged(4, outcome.status, outcome.report_text()),
                         b"delivery 4: deferral: no_such_list/")
        # pymta's own text for a silent program, and a crash, are messages: slash
        outcome = self.local("prog3", "|exit 100\n")
        self.assertEqual(self.logged(5, outcome.status, outcome.report_text()),
                         b"delivery 5: failure: Program_exited_with_status_100._(#5.0.0)/")
        outcome = self.local("prog4", "|echo before; kill -9 $$\n")
        self.assertEqual(self.logged(6, outcome.status, outcome.report_text()),
                         b"delivery 6: deferral: before/Aack,_child_crashed._(#4.3.0)/")

    def test_remote_texts(self) -> None:
        result = combine_report(
            (REFUSED, "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user here\n"),
            FAILURE, "Giving up on 127.0.0.1.\n")
        self.assertEqual(
            self.logged(9, result.status, result.text),
            b"delivery 9: failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550_no_such_user_here/"
            b"Giving_up_on_127.0.0.1./")
        self.assertEqual(self.logged(10, SUCCESS, "127.0.0.1 accepted message.\nRemote host said: 250 ok\n"),
                         b"delivery 10: success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok/")

    def test_mangled(self) -> None:
        self.assertEqual(self.logged(11, None, ""), b"delivery 11: report mangled, will defer")  # type: ignore[arg-type]

    def test_printed(self) -> None:
        self.assertEqual(printed("x"), "x\n")
        self.assertEqual(printed("x\n"), "x\n")
        self.assertEqual(DeliveryFailure.temporary("busy").report, "busy\n")
        self.assertEqual(DeliveryFailure.permanent("out", verbatim=True).report, "out")

