"""Security review: users/passwd made by root is readable by the daemons' group only."""

from __future__ import annotations

import io
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import passwd


class NewPasswdFileOwnerTests(SynchronousTestCase):
    def test_new_file_as_root_belongs_to_the_mail_group(self) -> None:
        """C{pymta init} makes users/passwd root:<mail gid> 0640; C{pymta passwd} creating it must too."""
        if os.getuid() != 0:
            raise self.skipTest("needs root: file ownership")
        root = self.mktemp()
        os.makedirs(os.path.join(root, "queue"))
        os.chown(os.path.join(root, "queue"), 4242, 4243)
        self.assertEqual(passwd.main(["--root", root, "--scheme", "plain", "dora"], stdin=io.StringIO("pw\n")), 0)
        st = os.stat(os.path.join(root, "users", "passwd"))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 4243, 0o640))
        # an existing file keeps what the operator gave it
        os.chown(os.path.join(root, "users", "passwd"), 0, 0)
        self.assertEqual(passwd.main(["--root", root, "--scheme", "plain", "erik"], stdin=io.StringIO("pw\n")), 0)
        self.assertEqual(os.stat(os.path.join(root, "users", "passwd")).st_gid, 0)
