"""
The opt-in RCPT check: routing decides which recipients local delivery is
asked about; its answer (a Deferred) decides 250 or 550.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.control import ControlError, load_controls
from pymta.local.recipients import LocalRecipientLookup
from pymta.smtpd.rcptcheck import rcptcheck_enabled, recipient_check_for
from tests.smtpd.helpers import Session, make_root


class FakeDirectory:
    """A L{pymta.interfaces.LocalRecipients} knowing C{known}, answering C{delay} seconds later on C{clock}."""

    def __init__(self, clock: task.Clock, known: set[str], delay: float = 1.0) -> None:
        self.clock = clock
        self.known = known
        self.delay = delay
        self.asked: list[str] = []
        self.fail: Exception | None = None

    def deliverable(self, local: str) -> "defer.Deferred[bool]":
        self.asked.append(local)
        if self.fail is not None:
            return defer.fail(self.fail)
        return task.deferLater(self.clock, self.delay, lambda: local.lower() in self.known)


def rcptcheck_root(base: str) -> str:
    return os.path.abspath(make_root(base, rcptcheck="# on: unknown local recipients get 550 at RCPT",
                                     virtualdomains="virt.example:joe"))


class RecipientCheckWithFakeDirectory(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = rcptcheck_root(self.mktemp())
        self.controls = load_controls(self.root)
        self.clock = task.Clock()
        self.directory = FakeDirectory(self.clock, {"joe", "joe-lists"})
        self.check = recipient_check_for(self.controls, self.directory)

    def test_routing_decides_who_is_asked(self) -> None:
        assert self.check is not None
        outcomes = {
            "joe@mx.example.org": True,
            "joe-other@mx.example.org": False,
            "lists@virt.example": True,  # virtualdomains: local delivery sees joe-lists
            "unknown@virt.example": False,
        }
        for address, want in outcomes.items():
            d = self.check(self.controls, address)
            self.assertNoResult(d)  # the answer comes later, not in this call
            self.clock.advance(1)
            self.assertIs(self.successResultOf(d), want, address)
        self.assertEqual(self.directory.asked, ["joe", "joe-other", "joe-lists", "joe-unknown"])

    def test_remote_recipients_pass_unasked(self) -> None:
        assert self.check is not None
        self.assertIs(self.successResultOf(self.check(self.controls, "anyone@remote.example")), True)
        self.assertEqual(self.directory.asked, [])

    def test_in_session_the_reply_waits_for_the_answer(self) -> None:
        s = Session(self.root, recipient_check=self.check, junk_command_limit=100)
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        pipelined = s.send(b"RCPT TO:<joe@mx.example.org>\r\nRCPT TO:<nobody@mx.example.org>\r\nNOOP\r\n")
        self.assertEqual(pipelined, [])  # nothing is answered before local delivery has
        self.clock.advance(1)
        self.assertEqual(s.take(), ["250 ok"])
        self.clock.advance(1)
        self.assertEqual(s.take(), ["550 sorry, no mailbox here by that name (#5.1.1)", "250 ok"])
        self.assertEqual(s.proto.recipients, ["joe@mx.example.org"])
        s.close()

    def test_a_failed_lookup_is_a_temporary_reply(self) -> None:
        self.directory.fail = RuntimeError("lookup broke")
        s = Session(self.root, recipient_check=self.check)
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<joe@mx.example.org>"), ["451 temporary failure checking the recipient (#4.3.0)"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        s.close()

    def test_disabled_without_control_file_or_lookup(self) -> None:
        self.assertIsNone(recipient_check_for(self.controls, None))
        os.unlink(os.path.join(self.root, "control", "rcptcheck"))
        self.assertIsNone(recipient_check_for(load_controls(self.root), self.directory))

    def test_a_value_is_refused(self) -> None:
        # "0" or "off" would turn the check on: the file takes no value
        path = os.path.join(self.root, "control", "rcptcheck")
        self.assertTrue(rcptcheck_enabled(load_controls(self.root)))
        for text in ("0\n", "# enabled?\noff\n"):
            with open(path, "w") as f:
                f.write(text)
            error = self.assertRaises(ControlError, recipient_check_for, load_controls(self.root), self.directory)
            self.assertTrue(str(error).startswith(f"{path}:{text.count(chr(10))}: rcptcheck takes no value"), str(error))
            self.assertIn("remove the file to turn it off", str(error))
        with open(path, "w") as f:
            f.write("")
        self.assertTrue(rcptcheck_enabled(load_controls(self.root)))
        os.unlink(path)
        self.assertFalse(rcptcheck_enabled(load_controls(self.root)))


class RecipientCheckWithLocalDelivery(TestCase):
    """The daemons' check: routing plus local delivery's own lookup (assign users, extensions, the alias user)."""

    def setUp(self) -> None:
        self.root = rcptcheck_root(self.mktemp())
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
        lookup = LocalRecipientLookup(self.root, reactor)
        lookup.startService()
        self.addCleanup(lookup.stopService)
        self.check = recipient_check_for(self.controls, lookup)

    @defer.inlineCallbacks
    def test_decisions(self):  # type: ignore[no-untyped-def]
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
            self.assertEqual((yield self.check(self.controls, address)), want, address)

    @defer.inlineCallbacks
    def test_default_file_accepts_all(self):  # type: ignore[no-untyped-def]
        with open(os.path.join(self.root, "alias", ".qmail-default"), "w") as f:
            f.write("./Maildir/\n")
        assert self.check is not None
        self.assertTrue((yield self.check(self.controls, "nobody@mx.example.org")))
