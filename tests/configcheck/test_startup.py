"""The daemons' side: a one-line refusal at start, logged warnings, and a reload refused whole."""

from __future__ import annotations

import os
from typing import cast

from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck import startup
from pymta.configcheck.problem import ERROR, Problem
from pymta.control import ControlError
from tests.configcheck.helpers import init_root, write


class StartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict] = []
        self.patch(startup, "log", Logger(namespace="test", observer=cast(ILogObserver, self.events.append)))

    def logged(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def test_error_is_one_line_naming_file_and_line(self) -> None:
        root = init_root(self)
        write(root, "control/smtproutes", "a.example:relay:notaport\nb.example:relay:99999\n")
        with self.assertRaises(SystemExit) as cm:
            startup.checked_reader(root, "pymta-smtpd")
        text = str(cm.exception.code)
        self.assertEqual(text.count("\n"), 0)
        self.assertEqual(text, f"pymta-smtpd: configuration error, not starting: {root}/control/smtproutes:1: "
                               "bad port 'notaport' (expected 1 to 65535) "
                               "(and 1 more error: pymta check lists them)")

    def test_warnings_are_logged_and_the_daemon_starts(self) -> None:
        root = init_root(self)
        os.unlink(os.path.join(root, "control", "rcpthosts"))
        os.unlink(os.path.join(root, "control", "servercert.pem"))
        reader = startup.checked_reader(root, "pymta")
        self.assertEqual(reader.current.me, "mx.example.test")
        lines = self.logged()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith(f"pymta: {root}/control/rcpthosts: warning: absent: OPEN RELAY"), lines)
        self.assertIn("servercert.pem: warning: absent: no STARTTLS", lines[1])

    def test_summary(self) -> None:
        errors = [Problem("/r/a", 2, ERROR, "x"), Problem("/r/b", 0, ERROR, "y"), Problem("/r/c", 1, ERROR, "z")]
        self.assertEqual(startup.summary(errors), "/r/a:2: x (and 2 more errors: pymta check lists them)")
        self.assertEqual(startup.summary(errors[1:2]), "/r/b: y")


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict] = []
        self.patch(startup, "log", Logger(namespace="test", observer=cast(ILogObserver, self.events.append)))

    def test_an_error_anywhere_keeps_every_old_value(self) -> None:
        root = init_root(self)
        reader = startup.checked_reader(root, "pymta")
        before = reader.current
        write(root, "control/databytes", "1000\n")
        write(root, "control/servercert.pem", "not a certificate\n", 0o600)
        with self.assertRaises(ControlError) as cm:
            reader.reload()
        self.assertIsInstance(cm.exception, startup.ConfigurationRefused)
        self.assertEqual(str(cm.exception), f"{root}/control/servercert.pem: no private key")
        self.assertEqual((cm.exception.path, cm.exception.lineno), (f"{root}/control/servercert.pem", 0))
        self.assertIs(reader.current, before)
        os.unlink(os.path.join(root, "control", "servercert.pem"))
        self.assertEqual(reader.reload().databytes, 1000)  # a warning does not stop a reload
