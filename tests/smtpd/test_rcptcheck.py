"""The opt-in RCPT check: assign users, extensions, the alias user, remote domains."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, load_controls
from pymta.smtpd.rcptcheck import rcptcheck_enabled, recipient_check_for
from tests.smtpd.helpers import Session, make_root


class RecipientCheck(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(make_root(self.mktemp(), rcptcheck="# on: unknown local recipients get 550 at RCPT",
                                              virtualdomains="virt.example:joe"))
        home = os.path.join(self.root, "home", "joe")
        os.makedirs(home)
        os.makedirs(os.path.join(self.root, "alias"))
        os.makedirs(os.path.join(self.root, "users"))
        with open(os.path.join(self.root, "users", "assign"), "w") as f:
            f.write(f"=joe:joe:1234:1234:{home}:::\n+joe-:joe:1234:1234:{home}:-::\n.\n")
        for path in (os.path.join(home, ".qmail-lists"), os.path.join(self.root, "alias", ".qmail-postmaster")):
            with open(path, "w") as f:
                f.write("./Maildir/\n")
        self.controls = load_controls(self.root)
        self.check = recipient_check_for(self.root, self.controls)

    def test_decisions(self) -> None:
        assert self.check is not None
        known = {
            "joe@mx.example.org": True,
            "JOE@mx.example.org": True,
            "joe-lists@mx.example.org": True,
            "joe-other@mx.example.org": False,
            "postmaster@mx.example.org": True,
            "nobody@mx.example.org": False,
            "lists@virt.example": True,
            "unknown@virt.example": False,
            "anyone@remote.example": True,
        }
        for address, want in known.items():
            self.assertEqual(self.check(self.controls, address), want, address)

    def test_default_file_accepts_all(self) -> None:
        with open(os.path.join(self.root, "alias", ".qmail-default"), "w") as f:
            f.write("./Maildir/\n")
        assert self.check is not None
        self.assertTrue(self.check(self.controls, "nobody@mx.example.org"))

    def test_disabled_without_control_file(self) -> None:
        os.unlink(os.path.join(self.root, "control", "rcptcheck"))
        self.assertIsNone(recipient_check_for(self.root, load_controls(self.root)))

    def test_a_value_is_refused(self) -> None:
        # "0" or "off" would turn the check on: the file takes no value
        path = os.path.join(self.root, "control", "rcptcheck")
        self.assertTrue(rcptcheck_enabled(load_controls(self.root)))
        for text in ("0\n", "# enabled?\noff\n"):
            with open(path, "w") as f:
                f.write(text)
            error = self.assertRaises(ControlError, recipient_check_for, self.root, load_controls(self.root))
            self.assertTrue(str(error).startswith(f"{path}:{text.count(chr(10))}: rcptcheck takes no value"), str(error))
            self.assertIn("remove the file to turn it off", str(error))
        with open(path, "w") as f:
            f.write("")
        self.assertTrue(rcptcheck_enabled(load_controls(self.root)))
        os.unlink(path)
        self.assertFalse(rcptcheck_enabled(load_controls(self.root)))

    def test_in_session(self) -> None:
        s = Session(self.root, recipient_check=self.check)
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<joe@mx.example.org>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<nobody@mx.example.org>"), ["550 sorry, no mailbox here by that name (#5.1.1)"])
        s.close()
