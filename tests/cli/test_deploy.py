"""Tests for pymta deploy: writing the .tac files and systemd units of this installation."""

from __future__ import annotations

import io
import os
import pwd
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import deploy
from pymta.deploy.files import TAC_FILES, UNIT_FILES, find_twistd


class DeployCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.tac_dir = os.path.join(self.base, "etc", "pymta")
        self.unit_dir = os.path.join(self.base, "systemd")
        self.root = os.path.join(self.base, "root")

    def run_deploy(self, *extra: str, dirs: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        argv = ["--root", self.root, "--tac-dir", self.tac_dir, "--unit-dir", self.unit_dir] if dirs else []
        status = deploy.main([*argv, *extra])
        return status, out.getvalue(), err.getvalue()

    def test_writes_tac_files_and_units(self) -> None:
        status, out, _ = self.run_deploy()
        self.assertEqual(status, 0)
        self.assertEqual(sorted(os.listdir(self.tac_dir)), sorted(TAC_FILES))
        self.assertEqual(sorted(os.listdir(self.unit_dir)), sorted(UNIT_FILES))
        for name in TAC_FILES:
            self.assertIn(f"wrote {self.tac_dir}/{name}\n", out)
        with open(os.path.join(self.unit_dir, "pymta-send.service")) as f:
            unit = f.read()
        self.assertIn(f"ExecStart={find_twistd()} --nodaemon --pidfile= --logfile=- -y {self.tac_dir}/send.tac\n", unit)
        self.assertIn(f"Environment=PYMTA_ROOT={self.root}\n", unit)
        self.assertIn(f"ReadWritePaths={self.root} -/home\n", unit)
        self.assertIn("next: systemctl daemon-reload", out)

    def test_second_run_changes_nothing(self) -> None:
        self.run_deploy()
        status, out, _ = self.run_deploy()
        self.assertEqual(status, 0)
        self.assertEqual(out.count("unchanged "), len(TAC_FILES) + len(UNIT_FILES))
        self.assertNotIn("wrote", out)
        self.assertNotIn("next:", out)

    def test_edited_file_refused_then_forced(self) -> None:
        self.run_deploy()
        unit = os.path.join(self.unit_dir, "pymta-smtpd.service")
        with open(unit, "a") as f:
            f.write("# local edit\n")
        status, out, err = self.run_deploy("--root", "/srv/other")
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith(f"pymta deploy: {self.unit_dir}/pymta-pop3d.service, "), err)
        self.assertIn(f"{self.unit_dir}/pymta-smtpd.service", err)
        self.assertIn("left alone", err)
        with open(unit) as f:
            self.assertTrue(f.read().endswith("# local edit\n"))
        status, out, _ = self.run_deploy("--root", "/srv/other", "--force")
        self.assertEqual(status, 0)
        with open(unit) as f:
            text = f.read()
        self.assertNotIn("# local edit", text)
        self.assertIn("Environment=PYMTA_ROOT=/srv/other\n", text)

    def test_dry_run_shows_and_writes_nothing(self) -> None:
        status, out, _ = self.run_deploy("--dry-run")
        self.assertEqual(status, 0)
        self.assertFalse(os.path.exists(self.base))
        self.assertIn(f"would write {self.unit_dir}/pymta.service\n", out)
        self.run_deploy()
        status, out, _ = self.run_deploy("--dry-run", "--user", "mailer")
        self.assertEqual(status, 0)
        self.assertIn(f"differs, --force would replace {self.unit_dir}/pymta-smtpd.service\n", out)
        self.assertIn("-User=pymta\n+User=mailer\n", out)
        self.assertIn(f"unchanged {self.unit_dir}/pymta-send.service\n", out)
        with open(os.path.join(self.unit_dir, "pymta-smtpd.service")) as f:
            self.assertIn("User=pymta\n", f.read())

    def test_no_units(self) -> None:
        status, out, err = self.run_deploy("--tac-dir", self.tac_dir, "--no-units", dirs=False)
        self.assertEqual(status, 0)
        self.assertEqual(sorted(os.listdir(self.tac_dir)), sorted(TAC_FILES))
        self.assertNotIn("systemd", out + err)

    def test_show(self) -> None:
        status, out, _ = self.run_deploy("--show", "pymta-smtpd.service", "--user", "mailer")
        self.assertEqual(status, 0)
        self.assertIn("User=mailer\n", out)
        self.assertFalse(os.path.exists(self.base))
        status, out, _ = self.run_deploy("--show", "tcp.smtp")
        self.assertEqual(status, 0)
        self.assertIn('127.:allow,RELAYCLIENT=""\n', out)
        status, _, err = self.run_deploy("--show", "nothing.tac")
        self.assertEqual(status, 1)
        self.assertIn("pymta deploy: no shipped file 'nothing.tac'", err)

    def test_value_systemd_would_misread(self) -> None:
        status, out, err = self.run_deploy("--tac-dir", "/etc/my pymta")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, "pymta deploy: --tac-dir '/etc/my pymta': blanks, quotes, backslashes, ';', '%' "
                              "and '$' cannot go into a systemd unit unquoted\n")
        self.assertFalse(os.path.exists(self.base))

    def test_unwritable_target(self) -> None:
        os.makedirs(self.base)
        with open(os.path.join(self.base, "etc"), "w") as f:
            f.write("a file where a directory should be\n")
        status, _, err = self.run_deploy()
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn(os.path.join(self.base, "etc"), err)

    def test_account_hints(self) -> None:
        missing = "pymta-no-such-user"
        self.assertRaises(KeyError, pwd.getpwnam, missing)
        status, _, err = self.run_deploy("--user", missing)
        self.assertEqual(status, 0)
        self.assertIn(f"pymta deploy: warning: user {missing} does not exist yet", err)
        me = pwd.getpwuid(os.getuid()).pw_name
        os.makedirs(os.path.join(self.root, "queue"))
        os.chown(os.path.join(self.root, "queue"), 4242 if os.getuid() == 0 else os.getuid(), -1)
        status, _, err = self.run_deploy("--user", me, "--force")
        self.assertEqual(status, 0)
        if os.getuid() == 0:
            self.assertIn(f"{self.root}/queue belongs to uid 4242, not to {me} (uid 0)", err)
        else:
            self.assertNotIn("belongs to", err)
