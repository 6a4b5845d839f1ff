"""
Security review of the root spawner's message file: it opens the path its
parent (the queue manager, running as the mail uid) names, as root, and hands
the descriptor to a delivery child of the recipient's uid.  Only a regular
file owned by the queue's owner may be delivered, or a compromised queue
manager could make root read any file (/etc/shadow) into a mailbox.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from tests.local.helpers import MESSAGE, chown_tree, write_file
from tests.local import test_spawner as base
from tests.local.test_spawner import GID, IS_ROOT, UID


class MessageFileOwnerTests(unittest.TestCase):
    setUp = base.SpawnerTests.setUp
    spawner = base.SpawnerTests.spawner
    deliver = base.SpawnerTests.deliver

    def test_message_owned_by_another_uid_refused(self) -> None:
        if not IS_ROOT:
            raise unittest.SkipTest("needs root: file ownership")
        queue = os.path.join(self.root, "queue")
        chown_tree(queue, UID, GID)  # the queue and its message belong to the mail uid
        secret = write_file(os.path.join(self.root, "secret"), MESSAGE, 0o600)  # root's file
        spawner = self.spawner()
        self.deliver(spawner, 1, "joe@x", message=secret)
        report = spawner.next()
        self.assertEqual(report["status"], "Z")
        self.assertIn("not owned by the queue", report["output"])
        self.assertEqual(os.listdir(os.path.join(self.home, "Maildir", "new")), [])
        self.deliver(spawner, 2, "joe@x")
        self.assertEqual(spawner.next()["status"], "K")
        self.assertEqual(len(os.listdir(os.path.join(self.home, "Maildir", "new"))), 1)
        self.assertEqual(spawner.close(), 0)

    def test_fifo_refused_without_blocking(self) -> None:
        fifo = os.path.join(self.root, "queue", "fifo")
        os.mkfifo(fifo, 0o600)
        spawner = self.spawner()
        self.deliver(spawner, 1, "joe@x", message=fifo)
        report = spawner.next(timeout=10)
        self.assertEqual(report["status"], "Z")
        self.assertIn("not a regular file", report["output"])
        self.assertEqual(spawner.close(), 0)


class DefaultDeliveryTests(unittest.TestCase):
    """defaultdelivery comes from the control file, never from the (mail uid's) request."""

    setUp = base.SpawnerTests.setUp
    spawner = base.SpawnerTests.spawner

    def test_request_text_ignored(self) -> None:
        marker = os.path.join(self.root, "ran")
        spawner = self.spawner()
        spawner.request(slot=1, message=self.message, sender="a@b", recipient="joe@x",
                        defaultdelivery=f"|touch {marker}\n")
        report = spawner.next()
        self.assertEqual((report["status"], report["did"]), ("K", [1, 0, 0]))
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(len(os.listdir(os.path.join(self.home, "Maildir", "new"))), 1)
        self.assertEqual(spawner.close(), 0)

    def test_control_file_read_and_reread(self) -> None:
        control = os.path.join(self.root, "control")
        os.makedirs(control)
        write_file(os.path.join(control, "defaultdelivery"), "./Mailbox\n")
        spawner = self.spawner()
        spawner.request(slot=1, message=self.message, sender="a@b", recipient="joe@x", defaultdelivery="./Maildir/\n")
        self.assertEqual(spawner.next()["status"], "K")
        self.assertTrue(os.path.exists(os.path.join(self.home, "Mailbox")))
        write_file(os.path.join(control, "defaultdelivery"), "# the Maildir again\n./Maildir/\n\n")
        spawner.request(slot=2, message=self.message, sender="a@b", recipient="joe@x", defaultdelivery="./Mailbox\n")
        self.assertEqual(spawner.next()["status"], "K")
        self.assertEqual(len(os.listdir(os.path.join(self.home, "Maildir", "new"))), 1)
        write_file(os.path.join(control, "defaultdelivery"), b"./Maildir/\0\n")
        spawner.request(slot=3, message=self.message, sender="a@b", recipient="joe@x", defaultdelivery="./Maildir/\n")
        report = spawner.next()
        self.assertEqual(report["status"], "Z")
        self.assertIn("control/defaultdelivery", report["output"])
        self.assertEqual(spawner.close(), 0)


class RootNeverDeliversTests(unittest.TestCase):
    """uid 0 is refused whichever way a recipient maps to it."""

    setUp = base.SpawnerTests.setUp
    spawner = base.SpawnerTests.spawner
    deliver = base.SpawnerTests.deliver

    def test_alias_directory_owned_by_root(self) -> None:
        if not IS_ROOT:
            raise unittest.SkipTest("needs root: file ownership")
        os.chown(os.path.join(self.root, "alias"), 0, 0)
        spawner = self.spawner()
        self.deliver(spawner, 1, "zzqx-nosuch@x")
        report = spawner.next()
        self.assertEqual((report["status"], report["output"]), ("Z", base.ROOT_REFUSED + "\n"))
        self.assertEqual(spawner.close(), 0)

    def test_passwd_root_account_goes_to_the_alias_user(self) -> None:
        """qmail-getpw skips uid 0: mail for C{root} is the alias user's (C{.qmail-root}), never root's."""
        spawner = self.spawner()
        self.deliver(spawner, 1, "root@x")
        report = spawner.next()
        # the alias directory has no .qmail-root and ext is set: no mailbox, but not as root either
        self.assertEqual(report["status"], "D")
        self.assertEqual(report["uid"], UID)
        self.assertEqual(spawner.close(), 0)
