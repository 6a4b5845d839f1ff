"""Tests for pymta.deploy.writer: writing without undoing an administrator's edits."""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from pymta.deploy.files import DeployError
from pymta.deploy.writer import diff, plan, write


class WriterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.a = os.path.join(self.base, "etc", "a.tac")
        self.b = os.path.join(self.base, "units", "b.service")

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def test_new_files_written_with_their_directories(self) -> None:
        planned = plan({self.a: b"A\n", self.b: b"B\n"})
        self.assertEqual([p.state for p in planned], ["new", "new"])
        self.assertEqual([p.path for p in write(planned)], [self.a, self.b])
        self.assertEqual((self.read(self.a), self.read(self.b)), (b"A\n", b"B\n"))
        self.assertEqual(stat.S_IMODE(os.stat(self.a).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.a)).st_mode) & 0o755, 0o755)
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.a))), ["a.tac"])  # no temporary left

    def test_same_content_is_left_alone(self) -> None:
        write(plan({self.a: b"A\n"}))
        before = os.stat(self.a).st_ino
        planned = plan({self.a: b"A\n"})
        self.assertEqual([p.state for p in planned], ["same"])
        self.assertEqual(write(planned), [])
        self.assertEqual(os.stat(self.a).st_ino, before)

    def test_changed_file_refused_and_nothing_written(self) -> None:
        write(plan({self.a: b"A\n"}))
        with open(self.a, "w") as f:
            f.write("edited by the admin\n")
        planned = plan({self.a: b"A2\n", self.b: b"B\n"})
        self.assertEqual([p.state for p in planned], ["changed", "new"])
        e = self.assertRaises(DeployError, write, planned)
        self.assertEqual(str(e), f"{self.a}: differs from what pymta deploy writes; left alone "
                                 "(see the difference with --dry-run, replace with --force)")
        self.assertEqual(self.read(self.a), b"edited by the admin\n")
        self.assertFalse(os.path.exists(self.b))

    def test_force_replaces(self) -> None:
        write(plan({self.a: b"A\n"}))
        with open(self.a, "w") as f:
            f.write("edited\n")
        os.chmod(self.a, 0o600)
        self.assertEqual(len(write(plan({self.a: b"A\n"}), force=True)), 1)
        self.assertEqual(self.read(self.a), b"A\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.a).st_mode), 0o644)

    def test_diff(self) -> None:
        write(plan({self.a: b"one\ntwo\n"}))
        (item,) = plan({self.a: b"one\nthree\n"})
        text = diff(item)
        self.assertIn(f"--- {self.a} (now)\n+++ {self.a} (pymta deploy)\n", text)
        self.assertIn("-two\n+three\n", text)

    def test_directory_in_the_way(self) -> None:
        os.makedirs(self.a)
        e = self.assertRaises(DeployError, plan, {self.a: b"A\n"})
        self.assertEqual(str(e), f"{self.a}: exists and is not a regular file")
