"""Tests for pymta.deploy.files: the shipped files and how they are filled in."""

from __future__ import annotations

import os
import re
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.deploy import files
from pymta.deploy.files import DeployError, Settings, check_settings, deploy_files, find_twistd, render, rendered
from tests.deploy.units import kept_capabilities_in_comments, parse_unit

SETTINGS = Settings(twistd="/opt/pymta/bin/twistd", tac_dir="/etc/pymta", root="/srv/mail", user="mailer", group="mail")
SPLIT_UNITS = ("pymta-send.service", "pymta-smtpd.service", "pymta-pop3d.service")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RenderTests(SynchronousTestCase):
    def test_placeholders_replaced(self) -> None:
        self.assertEqual(render("a=@ROOT@ b=@ROOT@ c=@USER@\n", {"ROOT": "/r", "USER": "u"}), "a=/r b=/r c=u\n")

    def test_placeholder_without_value(self) -> None:
        e = self.assertRaises(DeployError, render, "x=@ROOT@ y=@NOPE@", {"ROOT": "/r"}, "x.service")
        self.assertEqual(str(e), "x.service: no value for @NOPE@")

    def test_every_unit_filled_in(self) -> None:
        for name in files.UNIT_FILES:
            text = rendered(name, SETTINGS)
            self.assertNotRegex(text, r"@[A-Z]+@", name)
            self.assertIn("Environment=PYMTA_ROOT=/srv/mail\n", text, name)

    def test_tac_files_copied_as_they_are(self) -> None:
        for name in files.TAC_FILES + files.EXAMPLE_FILES:
            with open(os.path.join(REPO, "pymta", "deploy", "tac", name)) as f:
                self.assertEqual(rendered(name, SETTINGS), f.read(), name)

    def test_unknown_file(self) -> None:
        e = self.assertRaises(DeployError, rendered, "postfix.service", SETTINGS)
        self.assertIn("no shipped file 'postfix.service'", str(e))

    def test_deploy_files_targets(self) -> None:
        targets = deploy_files(SETTINGS, "/etc/systemd/system")
        self.assertEqual(sorted(targets), sorted(
            [f"/etc/pymta/{n}" for n in files.TAC_FILES] + [f"/etc/systemd/system/{n}" for n in files.UNIT_FILES]))
        self.assertEqual(len(deploy_files(SETTINGS, None)), len(files.TAC_FILES))


class SettingsTests(SynchronousTestCase):
    def refused(self, **change: str) -> str:
        values = {**SETTINGS.__dict__, **change}
        return str(self.assertRaises(DeployError, check_settings, Settings(**values)))

    def test_good_settings(self) -> None:
        check_settings(SETTINGS)

    def test_relative_path(self) -> None:
        self.assertEqual(self.refused(root="var/pymta"), "--root 'var/pymta': an absolute path is needed")

    def test_characters_systemd_would_misread(self) -> None:
        for bad in ("/srv/my mail", "/srv/100%", "/srv/$HOME", '/srv/"q"', "/srv/a\\b", "/srv/a;b", "/srv/a\nb"):
            self.assertIn("cannot go into a systemd unit unquoted", self.refused(tac_dir=bad), bad)

    def test_trailing_slash(self) -> None:
        self.assertIn("no trailing slash", self.refused(root="/var/pymta/"))

    def test_account_names(self) -> None:
        self.assertEqual(self.refused(user="root user"), "--user 'root user': not a user or group name")
        self.assertIn("--group", self.refused(group="-g"))


class TwistdTests(SynchronousTestCase):
    def test_finds_this_installations_twistd(self) -> None:
        twistd = find_twistd()
        self.assertTrue(os.path.isabs(twistd))
        self.assertEqual(os.path.dirname(twistd), os.path.dirname(os.path.abspath(sys.executable)))
        with open(twistd) as f:
            self.assertIn("twisted.scripts.twistd", f.read())


class UnitContentTests(SynchronousTestCase):
    """What the issue asks of every unit, checked on the units as written."""

    def units(self) -> dict[str, tuple[str, dict[str, list[str]]]]:
        return {name: (text, parse_unit(text)) for name in files.UNIT_FILES for text in [rendered(name, SETTINGS)]}

    def test_service_basics(self) -> None:
        tacs = {"pymta.service": "pymta.tac", "pymta-send.service": "send.tac",
                "pymta-smtpd.service": "smtpd.tac", "pymta-pop3d.service": "pop3d.tac"}
        for name, (_, unit) in self.units().items():
            # READY=1 once listening (pymta.sdnotify), from the main process only
            self.assertEqual(unit["Service.Type"], ["notify"], name)
            self.assertEqual(unit["Service.NotifyAccess"], ["main"], name)
            self.assertEqual(unit["Service.Restart"], ["on-failure"], name)
            # root units: the main process has dropped to the queue owner, and their root keeps no
            # CAP_KILL for signalling it (pop3d none at all), so the reload command runs with "+"
            reload = "/bin/kill -HUP $MAINPID" if name == "pymta-smtpd.service" else "+/bin/kill -HUP $MAINPID"
            self.assertEqual(unit["Service.ExecReload"], [reload], name)
            self.assertEqual(unit["Service.ExecStart"],
                             [f"/opt/pymta/bin/twistd --nodaemon --pidfile= --logfile=- -y /etc/pymta/{tacs[name]}"], name)
            self.assertEqual(unit["Service.LimitNOFILE"], ["16384"], name)
            self.assertEqual(unit["Install.WantedBy"], ["multi-user.target"], name)

    def test_all_in_one_conflicts_with_each_split_unit(self) -> None:
        units = self.units()
        self.assertEqual(units["pymta.service"][1]["Unit.Conflicts"], [" ".join(SPLIT_UNITS)])
        for name in SPLIT_UNITS:
            self.assertEqual(units[name][1]["Unit.Conflicts"], ["pymta.service"], name)

    def test_smtpd_starts_after_send(self) -> None:
        unit = self.units()["pymta-smtpd.service"][1]
        self.assertIn("pymta-send.service", unit["Unit.After"][0].split())
        self.assertIn("pymta-send.service", unit["Unit.Wants"][0].split())

    def test_smtpd_never_root(self) -> None:
        unit = self.units()["pymta-smtpd.service"][1]
        self.assertEqual((unit["Service.User"], unit["Service.Group"]), (["mailer"], ["mail"]))
        self.assertEqual(unit["Service.CapabilityBoundingSet"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(unit["Service.AmbientCapabilities"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(unit["Service.ProtectHome"], ["yes"])
        self.assertEqual(unit["Service.ReadWritePaths"], ["-/srv/mail/run"])

    def test_root_units_list_every_capability_with_a_reason(self) -> None:
        for name, (text, unit) in self.units().items():
            kept = set(unit["Service.CapabilityBoundingSet"][0].split())
            self.assertEqual(kept_capabilities_in_comments(text), kept, name)
            if name != "pymta-smtpd.service":
                self.assertNotIn("Service.User", unit, name)  # root: its spawners need it
            self.assertNotIn("CAP_SYS_ADMIN", kept, name)
            self.assertNotIn("CAP_DAC_OVERRIDE", kept, name)

    def test_capabilities_in_install_docs(self) -> None:
        """docs/install.md names every capability each unit keeps, on the unit's line of its table."""
        with open(os.path.join(REPO, "docs", "install.md")) as f:
            docs = f.read()
        for name, (_, unit) in self.units().items():
            row = re.search(rf"^\| `{re.escape(name)}` \|.*$", docs, re.M)
            self.assertIsNotNone(row, name)
            assert row is not None
            for capability in unit["Service.CapabilityBoundingSet"][0].split():
                self.assertIn(capability, row.group(0), name)

    def test_sandbox(self) -> None:
        for name, (_, unit) in self.units().items():
            for key, value in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                               ("PrivateDevices", "yes"), ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
                               ("RestrictNamespaces", "yes"), ("RestrictSUIDSGID", "yes"), ("LockPersonality", "yes"),
                               ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
                               ("ProtectControlGroups", "yes"), ("RestrictRealtime", "yes"), ("UMask", "0077")):
                self.assertEqual(unit[f"Service.{key}"], [value], (name, key))
            self.assertEqual(unit["Service.SystemCallFilter"][0], "@system-service", name)
            # pyOpenSSL's cffi callbacks need writable+executable memory (tests.deploy.test_wx)
            self.assertNotIn("Service.MemoryDenyWriteExecute", unit, name)

    def test_delivering_units_can_write_homes(self) -> None:
        """Maildir delivery as each user (send, all-in-one) and POP3 deletions need /home writable."""
        for name in ("pymta.service", "pymta-send.service", "pymta-pop3d.service"):
            unit = self.units()[name][1]
            self.assertEqual(unit["Service.ProtectHome"], ["no"], name)
            self.assertIn("-/home", unit["Service.ReadWritePaths"][0].split(), name)
        self.assertEqual(self.units()["pymta-pop3d.service"][1]["Service.ReadWritePaths"], ["-/srv/mail/home -/home"])
