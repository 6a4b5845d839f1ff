"""Tests for pymta.fsutil: directory fsync, whole writes, new and replaced files."""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from pymta import fsutil


class _Recorder:
    """Wraps the os calls fsutil makes, recording their order."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[tuple[str, str]] = []
        real_fsync, real_link, real_rename = os.fsync, os.link, os.rename
        real_fsync_dir = fsutil.fsync_dir

        def fsync(fd: int) -> None:
            kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
            self.events.append(("fsync", kind))
            real_fsync(fd)

        def link(src: str, dst: str) -> None:
            self.events.append(("link", os.path.basename(dst)))
            real_link(src, dst)

        def rename(src: str, dst: str) -> None:
            self.events.append(("rename", os.path.basename(dst)))
            real_rename(src, dst)

        def fsync_dir(path: str) -> None:
            self.events.append(("fsync_dir", os.path.abspath(path)))
            real_fsync_dir(path)

        case.patch(os, "fsync", fsync)
        case.patch(os, "link", link)
        case.patch(os, "rename", rename)
        case.patch(fsutil, "fsync_dir", fsync_dir)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class FsyncDirTests(SynchronousTestCase):
    def test_directory(self) -> None:
        base = self.mktemp()
        os.mkdir(base)
        calls: list[bool] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            calls.append(stat.S_ISDIR(os.fstat(fd).st_mode))
            real(fd)

        self.patch(os, "fsync", fsync)
        fsutil.fsync_dir(base)
        self.assertEqual(calls, [True])

    def test_not_a_directory(self) -> None:
        path = self.mktemp()
        with open(path, "wb"):
            pass
        self.assertRaises(NotADirectoryError, fsutil.fsync_dir, path)

    def test_missing(self) -> None:
        self.assertRaises(FileNotFoundError, fsutil.fsync_dir, self.mktemp())

    def test_descriptor_closed_when_fsync_fails(self) -> None:
        base = self.mktemp()
        os.mkdir(base)
        opened: list[int] = []
        real_open = os.open

        def tracking_open(*args: object, **kwargs: object) -> int:
            fd = real_open(*args, **kwargs)  # type: ignore[arg-type]
            opened.append(fd)
            return fd

        def failing_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        self.patch(os, "open", tracking_open)
        self.patch(os, "fsync", failing_fsync)
        self.assertRaises(OSError, fsutil.fsync_dir, base)
        self.assertEqual(len(opened), 1)
        self.assertRaises(OSError, os.fstat, opened[0])


class WriteAllTests(SynchronousTestCase):
    def test_short_writes_are_continued(self) -> None:
        path = self.mktemp()
        real_write = os.write
        sizes: list[int] = []

        def one_byte(fd: int, data: bytes) -> int:
            sizes.append(len(data))
            return real_write(fd, bytes(data[:1]))

        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            self.patch(os, "write", one_byte)
            fsutil.write_all(fd, b"hello")
        finally:
            os.close(fd)
        self.assertEqual(_read(path), b"hello")
        self.assertEqual(sizes, [5, 4, 3, 2, 1])

    def test_empty(self) -> None:
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fsutil.write_all(fd, b"")
        finally:
            os.close(fd)
        self.assertEqual(_read(path), b"")


class WriteNewFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.mkdir(self.base)
        self.path = os.path.join(self.base, "f")

    def test_creates_with_mode_in_order(self) -> None:
        rec = _Recorder(self)
        self.assertTrue(fsutil.write_new_file(self.path, b"data\n", 0o644))
        self.assertEqual(_read(self.path), b"data\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)
        self.assertEqual(os.listdir(self.base), ["f"])
        self.assertEqual(rec.events, [("fsync", "file"), ("link", "f"), ("fsync_dir", self.base), ("fsync", "dir")])

    def test_existing_file_is_kept(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"old")
        os.chmod(self.path, 0o600)
        self.assertFalse(fsutil.write_new_file(self.path, b"new", 0o644))
        self.assertEqual(_read(self.path), b"old")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(self.base), ["f"])

    def test_failure_leaves_nothing(self) -> None:
        def failing_fsync(fd: int) -> None:
            raise OSError(28, "No space left on device")

        self.patch(os, "fsync", failing_fsync)
        self.assertRaises(OSError, fsutil.write_new_file, self.path, b"x", 0o644)
        self.assertEqual(os.listdir(self.base), [])

    def test_relative_path_syncs_its_directory(self) -> None:
        rel = os.path.relpath(self.path)
        self.assertFalse(os.path.isabs(rel))
        rec = _Recorder(self)
        self.assertTrue(fsutil.write_new_file(rel, b"x", 0o600))
        self.assertIn(("fsync_dir", self.base), rec.events)

    def test_owner_as_root(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        self.assertTrue(fsutil.write_new_file(self.path, b"x", 0o640, 1234, 2345))
        st = os.stat(self.path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (1234, 2345, 0o640))


class ReplaceFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.mkdir(self.base)
        self.path = os.path.join(self.base, "f")

    def test_creates(self) -> None:
        fsutil.replace_file(self.path, b"one", 0o640)
        self.assertEqual(_read(self.path), b"one")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(os.listdir(self.base), ["f"])

    def test_replaces_in_order(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"old content that is longer")
        inode = os.stat(self.path).st_ino
        rec = _Recorder(self)
        fsutil.replace_file(self.path, b"new", 0o644)
        self.assertEqual(_read(self.path), b"new")
        self.assertNotEqual(os.stat(self.path).st_ino, inode)
        self.assertEqual(os.listdir(self.base), ["f"])
        self.assertEqual(
            rec.events, [("fsync", "file"), ("rename", "f"), ("fsync_dir", self.base), ("fsync", "dir")]
        )

    def test_failure_keeps_old_and_removes_temporary(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"old")

        def failing_fsync(fd: int) -> None:
            raise OSError(28, "No space left on device")

        self.patch(os, "fsync", failing_fsync)
        self.assertRaises(OSError, fsutil.replace_file, self.path, b"new", 0o644)
        self.assertEqual(_read(self.path), b"old")
        self.assertEqual(os.listdir(self.base), ["f"])

    def test_owner_as_root(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        fsutil.replace_file(self.path, b"x", 0o600, (1234, 2345))
        st = os.stat(self.path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (1234, 2345, 0o600))
