"""pymta.fsaccess: what one uid and gid may do, from owners and mode bits."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.fsaccess import READ, SEARCH, WRITE, Account, blocking_directory, describe, may, may_write_in

MAIL = Account(4242, 4243)


def st(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((0o040000 | mode, 1, 1, 1, uid, gid, 0, 0, 0, 0))


class MayTests(SynchronousTestCase):
    def test_owner_group_other_bits(self) -> None:
        self.assertTrue(may(st(0o700, uid=4242), MAIL, READ | WRITE | SEARCH))
        self.assertFalse(may(st(0o070, uid=4242, gid=4243), MAIL, SEARCH))  # the owner bits count, not the group's
        self.assertTrue(may(st(0o750, gid=4243), MAIL, READ | SEARCH))
        self.assertFalse(may(st(0o750, gid=4243), MAIL, WRITE))
        self.assertTrue(may(st(0o701), MAIL, SEARCH))
        self.assertFalse(may(st(0o700), MAIL, SEARCH))
        self.assertFalse(may(st(0o755), MAIL, WRITE))

    def test_only_the_one_gid_counts(self) -> None:
        self.assertFalse(may(st(0o770, gid=100), Account(4242, 4243), SEARCH))

    def test_root_may(self) -> None:
        self.assertTrue(may(st(0o000), Account(0, 0), READ | WRITE | SEARCH))

    def test_describe(self) -> None:
        self.assertEqual(describe("/root", st(0o700)), "/root (mode 0700, owner 0:0)")


class PathTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.realpath(self.mktemp())
        os.makedirs(os.path.join(self.base, "closed", "inner"))
        os.chmod(os.path.dirname(self.base), 0o755)  # trial makes it private
        os.chmod(self.base, 0o755)
        os.chmod(os.path.join(self.base, "closed"), 0o700)
        os.chmod(os.path.join(self.base, "closed", "inner"), 0o755)
        # the test's own uid would own these: judge them for another account
        self.other = Account(os.getuid() + 4242, os.getgid() + 4242)

    def test_first_closed_directory_on_the_way(self) -> None:
        found = blocking_directory(os.path.join(self.base, "closed", "inner", "not", "yet"), self.other)
        self.assertIsNotNone(found)
        assert found is not None
        self.assertEqual(found[0], os.path.join(self.base, "closed"))

    def test_open_path(self) -> None:
        os.chmod(os.path.join(self.base, "closed"), 0o711)
        self.assertIsNone(blocking_directory(os.path.join(self.base, "closed", "inner"), self.other))

    def test_symbolic_links_followed(self) -> None:
        link = os.path.join(self.base, "link")
        os.symlink(os.path.join(self.base, "closed", "inner"), link)
        found = blocking_directory(link, self.other)
        assert found is not None
        self.assertEqual(found[0], os.path.join(self.base, "closed"))

    def test_the_directory_itself_counts(self) -> None:
        found = blocking_directory(os.path.join(self.base, "closed"), self.other)
        assert found is not None
        self.assertEqual(found[0], os.path.join(self.base, "closed"))

    def test_may_write_in(self) -> None:
        inner = os.path.join(self.base, "closed", "inner")
        os.chmod(inner, 0o777)
        self.assertFalse(may_write_in(inner, self.other))  # not reachable
        os.chmod(os.path.join(self.base, "closed"), 0o755)
        self.assertTrue(may_write_in(inner, self.other))
        os.chmod(inner, 0o755)
        self.assertFalse(may_write_in(inner, self.other))
        self.assertFalse(may_write_in(os.path.join(self.base, "missing"), self.other))
