"""pymta.ownfile: no symbolic link followed, and only a regular file with one name, the one at the path, given away."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.ownfile import UnsafeFile, open_no_follow, require_sole_regular


class OwnFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.realpath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "pymta.log")
        self.victim = os.path.join(self.dir, "victim")
        with open(self.victim, "w") as f:
            f.write("secret\n")

    def open(self, flags: int = os.O_RDWR | os.O_CREAT) -> int:
        fd = open_no_follow(self.path, flags)
        self.addCleanup(os.close, fd)
        return fd

    def test_regular_file(self) -> None:
        fd = self.open()
        st = require_sole_regular(fd, self.path)
        self.assertEqual(st.st_ino, os.lstat(self.path).st_ino)

    def test_symbolic_link_not_followed(self) -> None:
        os.symlink(self.victim, self.path)
        e = self.assertRaises(UnsafeFile, open_no_follow, self.path, os.O_RDWR | os.O_CREAT)
        self.assertIn(f"{self.path} is a symbolic link (to {self.victim!r})", str(e))
        self.assertNotIn("\n", str(e))

    def test_dangling_link_with_exclusive_create(self) -> None:
        os.symlink(os.path.join(self.dir, "nowhere"), self.path)
        e = self.assertRaises(UnsafeFile, open_no_follow, self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        self.assertIn("is a symbolic link", str(e))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "nowhere")))

    def test_other_errors_stay_oserror(self) -> None:
        e = self.assertRaises(OSError, open_no_follow, os.path.join(self.dir, "no", "such"), os.O_RDONLY)
        self.assertNotIsInstance(e, UnsafeFile)

    def test_hard_link_refused(self) -> None:
        os.link(self.victim, self.path)
        fd = self.open(os.O_RDONLY)
        e = self.assertRaises(UnsafeFile, require_sole_regular, fd, self.path)
        self.assertIn("has 2 names (hard links)", str(e))

    def test_replaced_since_opened(self) -> None:
        fd = self.open()
        os.rename(self.path, self.path + ".1")
        open(self.path, "w").close()
        e = self.assertRaises(UnsafeFile, require_sole_regular, fd, self.path)
        self.assertIn("names another file than the one opened", str(e))

    def test_gone_since_opened(self) -> None:
        fd = self.open()
        os.rename(self.path, self.path + ".1")
        e = self.assertRaises(UnsafeFile, require_sole_regular, fd, self.path)
        self.assertIn("is gone", str(e))

    def test_not_a_regular_file(self) -> None:
        fd = os.open(os.devnull, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        e = self.assertRaises(UnsafeFile, require_sole_regular, fd, os.devnull)
        self.assertIn("is not a regular file", str(e))
