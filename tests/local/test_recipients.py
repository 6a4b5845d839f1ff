"""
pymta.local.recipients: local delivery's answer to "has this local part a
mailbox?", looked up on its own thread pool, never in the reactor thread.
"""

from __future__ import annotations

import os
import pwd
import threading

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.trial.unittest import TestCase

from pymta.local.recipients import LocalRecipientLookup, RecentlyDeliverable
from tests.local.helpers import make_home, write_file


class LocalRecipientLookupTests(TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.home = make_home(os.path.join(self.root, "home", "sam"))
        self.uid = os.getuid() or 4242  # find_user never takes uid 0: as root the home goes to another uid
        if os.getuid() == 0:
            os.chown(self.home, self.uid, self.uid)
        self.asked: list[tuple[str, threading.Thread]] = []
        self.lookup = LocalRecipientLookup(self.root, reactor, getpwnam=self.getpwnam)
        self.lookup.startService()
        self.addCleanup(self.lookup.stopService)

    def getpwnam(self, account: str) -> pwd.struct_passwd:
        self.asked.append((account, threading.current_thread()))
        if account != "sam":
            raise KeyError(account)
        return pwd.struct_passwd(("sam", "x", self.uid, self.uid, "", self.home, "/bin/sh"))

    @defer.inlineCallbacks
    def test_passwd_users_and_extensions(self):  # type: ignore[no-untyped-def]
        self.assertTrue((yield self.lookup.deliverable("sam")))  # an exact user: defaultdelivery
        self.assertFalse((yield self.lookup.deliverable("sam-lists")))  # no .qmail-lists, no -default
        write_file(os.path.join(self.home, ".qmail-lists"), "./Maildir/\n")
        self.assertTrue((yield self.lookup.deliverable("sam-lists")))
        self.assertFalse((yield self.lookup.deliverable("sam-other")))
        write_file(os.path.join(self.home, ".qmail-default"), "./Maildir/\n")
        self.assertTrue((yield self.lookup.deliverable("sam-other")))

    @defer.inlineCallbacks
    def test_the_password_database_is_never_read_in_the_reactor_thread(self):  # type: ignore[no-untyped-def]
        reactor_thread = threading.current_thread()  # trial runs the reactor in the test's thread
        yield defer.gatherResults([self.lookup.deliverable(local) for local in ("sam", "sam-x", "nobody", "a-b-c")])
        self.assertLessEqual({"sam", "nobody", "a-b-c", "a-b", "a"}, {account for account, _ in self.asked})
        self.assertNotIn(reactor_thread, {thread for _, thread in self.asked})

    @defer.inlineCallbacks
    def test_undecidable_means_yes(self):  # type: ignore[no-untyped-def]
        # no passwd user and no alias directory: delivery would defer, so the check must not refuse
        self.assertTrue((yield self.lookup.deliverable("nobody")))
        os.makedirs(os.path.join(self.root, "users"))
        write_file(os.path.join(self.root, "users", "assign"), "=broken\n")  # no final '.': unreadable
        self.assertTrue((yield self.lookup.deliverable("sam-anything")))

    @defer.inlineCallbacks
    def test_alias_user(self):  # type: ignore[no-untyped-def]
        alias = os.path.join(self.root, "alias")
        os.makedirs(alias)
        self.assertFalse((yield self.lookup.deliverable("postmaster")))
        write_file(os.path.join(alias, ".qmail-postmaster"), "./Maildir/\n")
        self.assertTrue((yield self.lookup.deliverable("postmaster")))

    def test_lookups_wait_for_the_start(self):  # type: ignore[no-untyped-def]
        lookup = LocalRecipientLookup(self.root, reactor, getpwnam=self.getpwnam)
        d = lookup.deliverable("sam")
        self.assertNoResult(d)
        lookup.startService()
        self.addCleanup(lookup.stopService)
        return d.addCallback(self.assertTrue)


class CountingLookup:
    """A LocalRecipients whose answers the test sets; it counts the questions."""

    def __init__(self, answers: dict[str, bool]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def deliverable(self, local: str) -> "defer.Deferred[bool]":
        self.asked.append(local)
        return defer.succeed(self.answers[local])


class RecentlyDeliverableTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.lookup = CountingLookup({"joe": True, "nobody": False})
        self.recipients = RecentlyDeliverable(self.lookup, self.clock, ttl=10.0, size=3)

    def ask(self, local: str) -> bool:
        return self.successResultOf(self.recipients.deliverable(local))

    def test_yes_is_remembered_for_the_ttl(self) -> None:
        self.assertTrue(self.ask("joe"))
        self.clock.advance(9.9)
        self.assertTrue(self.ask("joe"))
        self.assertEqual(self.lookup.asked, ["joe"])
        self.clock.advance(0.2)
        self.assertTrue(self.ask("joe"))
        self.assertEqual(self.lookup.asked, ["joe", "joe"])

    def test_no_is_asked_every_time(self) -> None:
        self.assertFalse(self.ask("nobody"))
        self.assertFalse(self.ask("nobody"))
        self.assertEqual(self.lookup.asked, ["nobody", "nobody"])

    def test_a_recipient_removed_is_refused_after_the_ttl(self) -> None:
        self.assertTrue(self.ask("joe"))
        self.lookup.answers["joe"] = False
        self.clock.advance(11)
        self.assertFalse(self.ask("joe"))
        self.assertFalse(self.ask("joe"))

    def test_memory_is_bounded(self) -> None:
        for name in ("a", "b", "c", "d"):
            self.lookup.answers[name] = True
            self.ask(name)
        self.ask("d")  # still remembered
        self.ask("a")  # forgotten when the fourth name came: asked again
        self.assertEqual(self.lookup.asked, ["a", "b", "c", "d", "a"])
