"""Tests for pymta.cli.queuerun: sendmail -q, -q30m, -qR/-qS."""

from __future__ import annotations

import io
import os
import sys

from twisted.internet import reactor, utils
from twisted.trial import unittest

from pymta.cli import ctl, queuerun, sendmail
from pymta.control import ControlReader
from pymta.queue.service import build_send_service
from tests.queue.test_scheduler import RecordingChannel, make_root, queue_message
from tests.queue.test_service import PROJECT, wait_for


class ArgumentTests(unittest.SynchronousTestCase):
    def test_plain_q_is_doqueue(self) -> None:
        self.assertEqual(queuerun.ctl_arguments(""), ["doqueue"])
        self.assertEqual(sendmail.parse_sendmail_arguments(["-q"]).mode, "q")
        self.assertEqual(sendmail.parse_sendmail_arguments(["-q"]).queue_run, "")
        self.assertEqual(sendmail.parse_sendmail_arguments(["-v", "-qRexample.com"]).queue_run, "Rexample.com")

    def test_interval_refused_with_the_reason(self) -> None:
        for text in ("30m", "1h", "15"):
            with self.assertRaises(queuerun.QueueRunRefused) as e:
                queuerun.ctl_arguments(text)
            self.assertIn("pymta-send schedules its own retries", str(e.exception))

    def test_selectors_map_to_ctl_retry(self) -> None:
        self.assertIn("retry", ctl.SOCKET_COMMANDS)
        self.assertEqual(queuerun.ctl_arguments("Rexample.com"), ["retry", "--domain", "example.com"])
        self.assertEqual(queuerun.ctl_arguments("Sboss@corp.example"), ["retry", "--sender", "boss@corp.example"])

    def test_selectors_do_not_probe_ctl(self) -> None:
        """ctl retry has shipped: -qR/-qS are never refused for want of it (the probe is gone)."""
        self.patch(ctl, "SOCKET_COMMANDS", tuple(c for c in ctl.SOCKET_COMMANDS if c != "retry"))
        self.assertEqual(queuerun.ctl_arguments("Rexample.com"), ["retry", "--domain", "example.com"])

    def test_odd_forms(self) -> None:
        for text in ("R", "S", "Xfoo"):
            self.assertRaises(queuerun.QueueRunRefused, queuerun.ctl_arguments, text)

    def test_sendmail_exit_codes(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "run"))
        err = io.StringIO()
        self.assertEqual(sendmail.main(["--root", root, "-q30m"], progname="sendmail", stderr=err), 64)
        self.assertIn("sendmail: -q30m: pymta-send schedules its own retries", err.getvalue())
        err = io.StringIO()
        self.patch(sys, "stdout", io.StringIO())
        self.assertEqual(sendmail.main(["--root", root, "-q"], progname="sendmail", stderr=err), 75)
        self.assertIn("pymta-send is not running", err.getvalue())


class QueueRunTests(unittest.TestCase):
    """sendmail -q in a child process against a running pymta-send."""

    timeout = 60

    async def test_sendmail_q_retries_now_and_is_silent(self) -> None:
        root, layout = make_root(self, short=True)
        remote = RecordingChannel(answer=lambda job, r: ("Z", "later\n"))
        service, _ = build_send_service(root, ControlReader(root), {"local": RecordingChannel(), "remote": remote},
                                        reactor, signals=False)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        scheduler = service.getServiceNamed("pymta-send-scheduler")
        queue_message(layout, "a@mail.example", ["r@other.example"])
        scheduler.scan_todo()
        await wait_for(lambda: remote.jobs)
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-c", "import sys; from pymta.cli.main import sendmail_main; "
                             "sys.argv[0] = 'sendmail'; sys.exit(sendmail_main())", "--root", root, "-q"],
            env=dict(os.environ, PYTHONPATH=PROJECT), path=PROJECT)
        self.assertEqual((code, out, err), (0, b"", b""))
        await wait_for(lambda: len(remote.jobs) == 2)
