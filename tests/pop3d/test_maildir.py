"""Tests for pymta.pop3d.maildir: scanning, moves, sizes, races between sessions."""

from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.pop3d.maildir import MaildirStore, MessageUnavailable, NoMaildir, uid_of
from tests.pop3d.helpers import make_maildir, put_message, sample_maildir


class MaildirStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.maildir = sample_maildir(self.mktemp())

    def test_order_uids_sizes(self) -> None:
        messages = MaildirStore(self.maildir).load()
        self.assertEqual([(m.uid, m.size) for m in messages], [("1000.A.host", 23), ("1001.B.host", 36), ("1002.C.host", 24)])

    def test_missing_maildir(self) -> None:
        self.assertRaises(NoMaildir, MaildirStore(self.mktemp()).load)
        os.rmdir(os.path.join(self.maildir, "cur"))
        self.assertRaises(NoMaildir, MaildirStore(self.maildir).load)

    def test_tmp_cleanup_36h(self) -> None:
        old = put_message(self.maildir, "old", b"x", sub="tmp")
        fresh = put_message(self.maildir, "fresh", b"x", sub="tmp")
        past = time.time() - 36 * 3600 - 10
        os.utime(old, (past, past))
        MaildirStore(self.maildir).load()
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh))

    def test_dot_files_dirs_and_symlinks_skipped(self) -> None:
        put_message(self.maildir, ".hidden", b"x", sub="cur")
        os.mkdir(os.path.join(self.maildir, "cur", "adir"))
        secret = os.path.join(self.mktemp())
        with open(secret, "w") as f:
            f.write("secret\n")
        os.symlink(secret, os.path.join(self.maildir, "cur", "link:2,"))
        self.assertEqual(len(MaildirStore(self.maildir).load()), 3)

    def test_symlink_swapped_in_after_listing_not_followed(self) -> None:
        store = MaildirStore(self.maildir)
        store.load()
        path = os.path.join(self.maildir, "cur", store.messages[0].name)
        os.unlink(path)
        os.symlink("/etc/passwd", path)
        self.assertRaises(MessageUnavailable, store.open, 0)

    def test_dovecot_vsize_trusted(self) -> None:
        put_message(self.maildir, "1.X.host,S=3,W=99:2,S", b"abc", sub="cur", mtime=1)
        messages = MaildirStore(self.maildir).load()
        self.assertEqual((messages[0].uid, messages[0].size), ("1.X.host,S=3,W=99", 99))

    def test_crash_between_link_and_unlink_recovered(self) -> None:
        os.link(os.path.join(self.maildir, "new", "1000.A.host"), os.path.join(self.maildir, "cur", "1000.A.host:2,"))
        messages = MaildirStore(self.maildir).load()
        self.assertEqual(len(messages), 3)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "new")), [])

    def test_name_clash_never_overwrites(self) -> None:
        put_message(self.maildir, "1000.A.host:2,", b"different\n", sub="cur")
        MaildirStore(self.maildir).load()
        self.assertEqual(os.listdir(os.path.join(self.maildir, "new")), ["1000.A.host"])
        with open(os.path.join(self.maildir, "cur", "1000.A.host:2,"), "rb") as f:
            self.assertEqual(f.read(), b"different\n")

    def test_two_sessions_never_lose_or_duplicate(self) -> None:
        first, second = MaildirStore(self.maildir), MaildirStore(self.maildir)
        first.load()
        put_message(self.maildir, "1003.D.host", b"late\n")
        second.load()
        self.assertEqual(len(first.messages), 3)
        self.assertEqual(len(second.messages), 4)
        self.assertTrue(first.commit([0, 1]))
        self.assertRaises(MessageUnavailable, second.open, 0)
        self.assertTrue(second.commit([0, 3]))  # 0 already gone: still counts as deleted
        remaining = sorted(os.listdir(os.path.join(self.maildir, "cur")))
        self.assertEqual(remaining, ["1002.C.host:2,"])
        with second.open(2) as f:
            self.assertEqual(f.read(), b"Subject: three\n\nlast")

    def test_uid_of(self) -> None:
        self.assertEqual(uid_of("123.abc.host:2,S"), "123.abc.host")
        self.assertEqual(len(uid_of("a" * 100)), 64)
        self.assertEqual(len(uid_of("sp ace")), 64)

    def test_empty_maildir(self) -> None:
        self.assertEqual(MaildirStore(make_maildir(self.mktemp())).load(), [])
