"""
control/smarthostauth: its parser, the check of the routes that use it,
its mode and owner, and that no listing or error shows a password.
"""

from __future__ import annotations

import io
import os

from twisted.trial import unittest

from pymta.cli import showctl
from pymta.configcheck import run_checks
from pymta.configcheck.extrafiles import check_smarthostauth
from pymta.configcheck.problem import ERROR
from pymta.control import ControlError, ControlReader, load_controls
from pymta.remote.channel import RemoteChannel
from pymta.remote.smarthostauth import (
    Credentials,
    CredentialsTable,
    file_problem,
    masked,
    smarthost_credentials,
)
from pymta.remote.smtproutes import Route
from tests.configcheck.helpers import MAIL_IDS, check, init_root, write
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import make_root
from tests.remote.smtpserver import make_certificate

SECRET = "Pa55 word"


class TableTests(unittest.SynchronousTestCase):
    def test_entries(self) -> None:
        table = CredentialsTable(["smtp.example.net alice@example.org " + SECRET, "[192.0.2.1] bob pw"])
        self.assertEqual(len(table), 2)
        self.assertEqual(table.find("SMTP.Example.Net.", "alice@example.org"), Credentials("alice@example.org", SECRET))
        self.assertEqual(table.find("[192.0.2.1]", "bob"), Credentials("bob", "pw"))
        self.assertIsNone(table.find("smtp.example.net", "bob"))
        self.assertEqual(table.for_route(Route("smtp.example.net", 587, login="alice@example.org")).password, SECRET)
        self.assertIsNone(table.for_route(Route("smtp.example.net", 587)))
        self.assertIsNone(table.for_route(None))
        self.assertRaises(LookupError, table.for_route, Route("smtp.example.net", login="carol"))

    def test_bad_lines_never_show_the_password(self) -> None:
        cases = {
            "smtp.example.net alice": "expected RELAY LOGIN PASSWORD, found 2 fields",
            "smtp.example.net": "expected RELAY LOGIN PASSWORD, found 1 field",
            "bad..relay alice " + SECRET: "bad relay",
            "[256.0.0.1] alice " + SECRET: "not an IP address",
            "smtp.example.net al\x01ice " + SECRET: "control character",
        }
        for line, reason in cases.items():
            error = self.assertRaises(ControlError, CredentialsTable, ["r.example a b", line])
            self.assertEqual(error.lineno, 2, line)
            self.assertIn(reason, str(error), line)
            self.assertNotIn("Pa55", str(error), line)

    def test_repeated_entry(self) -> None:
        error = self.assertRaises(ControlError, CredentialsTable, ["r.example a one", "R.example. a two"])
        self.assertIn("a at R.example. repeats line 1", str(error))
        self.assertNotIn("one", str(error).replace("one of", ""))

    def test_masked(self) -> None:
        self.assertEqual(masked("smtp.example.net alice " + SECRET), "smtp.example.net alice ********")
        self.assertEqual(masked("smtp.example.net alice"), "(unusable line)")


class RouteCheckTests(unittest.SynchronousTestCase):
    def root(self, smtproutes: str, smarthostauth: str | None = None) -> str:
        controls = {"smtproutes": smtproutes}
        if smarthostauth is not None:
            controls["smarthostauth"] = smarthostauth
        root = make_root(self.mktemp(), controls)
        if smarthostauth is not None:
            os.chmod(os.path.join(root, "control", "smarthostauth"), 0o600)
        return root

    def test_route_without_password_is_named(self) -> None:
        root = self.root("a.example:relay.example\n:smtp.example.net:587 auth=alice\n", "smtp.example.net bob pw\n")
        error = self.assertRaises(ControlError, smarthost_credentials, load_controls(root))
        self.assertEqual((error.path, error.lineno), (os.path.join(root, "control", "smtproutes"), 2))
        self.assertEqual(error.reason, "no password for alice at smtp.example.net in control/smarthostauth")

    def test_unusable_ca_file_is_named(self) -> None:
        root = self.root(":smtp.example.net:465 smtps ca=/no/such/ca.pem\n")
        error = self.assertRaises(ControlError, smarthost_credentials, load_controls(root))
        self.assertEqual(error.lineno, 1)
        self.assertIn("unable to read the CA file /no/such/ca.pem", error.reason)

    def test_good(self) -> None:
        cert, _ = make_certificate("relay.example")
        ca = os.path.abspath(self.mktemp())
        with open(ca, "wb") as f:
            f.write(cert)
        root = self.root(f":smtp.example.net:587 auth=alice ca={ca}\n", "# relay login password\nsmtp.example.net alice pw\n")
        self.assertEqual(len(smarthost_credentials(load_controls(root))), 1)

    def test_channel_refuses_a_file_others_can_read(self) -> None:
        root = self.root(":smtp.example.net:587 auth=alice\n", "smtp.example.net alice " + SECRET + "\n")
        path = os.path.join(root, "control", "smarthostauth")
        RemoteChannel(root, ControlReader(root), resolver=FakeResolver())  # 0600: fine
        os.chmod(path, 0o640)
        error = self.assertRaises(ControlError, RemoteChannel, root, ControlReader(root), resolver=FakeResolver())
        self.assertEqual(error.path, path)
        self.assertIn("mode 0640", str(error))
        self.assertNotIn("Pa55", str(error))

    def test_reload_keeps_the_old_passwords_when_the_new_file_is_bad(self) -> None:
        root = self.root(":smtp.example.net:587 auth=alice\n", "smtp.example.net alice old\n")
        reader = ControlReader(root)
        channel = RemoteChannel(root, reader, resolver=FakeResolver())
        with open(os.path.join(root, "control", "smarthostauth"), "w") as f:
            f.write("smtp.example.net bob new\n")
        self.assertRaises(ControlError, reader.reload)
        table = channel.smarthost_credentials(reader.current)
        self.assertEqual(table.find("smtp.example.net", "alice"), Credentials("alice", "old"))


class FileModeTests(unittest.SynchronousTestCase):
    def test_file_problem(self) -> None:
        path = os.path.abspath(self.mktemp())
        self.assertIsNone(file_problem(path, (os.getuid(), os.getgid())))  # absent
        with open(path, "w") as f:
            f.write("r.example a b\n")
        os.chmod(path, 0o600)
        self.assertIsNone(file_problem(path, (os.getuid(), os.getgid())))
        os.chmod(path, 0o400)
        self.assertIsNone(file_problem(path, (os.getuid(), os.getgid())))
        for mode in (0o644, 0o640, 0o604, 0o620):
            os.chmod(path, mode)
            self.assertIn(f"mode {mode:04o}", file_problem(path, None) or "")
        os.chmod(path, 0o600)
        problem = file_problem(path, (os.getuid() + 1, 7))
        if os.getuid() == 0:  # root's file: allowed as root:mailgroup 0640 (pymta.secretfile's rule)
            self.assertEqual(problem, f"owned by root and group {os.getgid()}, not the mail account's group 7: "
                                      "the daemons could not read the passwords (chown 0:7, or chown 1:7)")
        else:
            self.assertEqual(problem, f"owned by uid {os.getuid()}, not by uid {os.getuid() + 1}, the mail account "
                                      f"the daemons run as (chown {os.getuid() + 1}:7)")
        os.unlink(path)
        os.mkdir(path)
        self.assertIn("not a regular file", file_problem(path, None) or "")


class CheckAndShowctlTests(unittest.SynchronousTestCase):
    def test_pymta_check_reports_mode_and_owner(self) -> None:
        root = init_root(self)
        path = write(root, "control/smarthostauth", "smtp.example.net alice " + SECRET + "\n", mode=0o644)
        write(root, "control/smtproutes", ":smtp.example.net:587 auth=alice\n")
        if os.getuid() == 0:
            os.chown(path, *MAIL_IDS)  # the mail account's file: judged by its mode
        problems = check(root, check_smarthostauth)
        self.assertEqual([(p.path, p.line, p.severity) for p in problems], [(path, 0, ERROR)])
        self.assertIn("mode 0644", problems[0].text)
        os.chmod(path, 0o600)
        if os.getuid() == 0:  # pymta init gave the queue to the mail account
            os.chown(path, 0, 0)
            problems = check(root, check_smarthostauth)
            self.assertIn(f"owned by root and group 0, not the mail account's group {MAIL_IDS[1]}", problems[0].text)
            os.chown(path, 0, MAIL_IDS[1])
            os.chmod(path, 0o640)
            self.assertEqual(check(root, check_smarthostauth), [])  # root's, readable by the mail group only
            os.chmod(path, 0o600)
            os.chown(path, *MAIL_IDS)
        self.assertEqual(check(root, check_smarthostauth), [])
        everything = run_checks(root)
        self.assertEqual([p for p in everything if p.is_error], [])
        self.assertFalse(any("Pa55" in str(p) for p in everything))

    def test_pymta_check_names_a_bad_line_without_its_password(self) -> None:
        root = init_root(self)
        write(root, "control/smarthostauth", "smtp.example.net alice\nbad..relay alice " + SECRET + "\n",
              mode=0o600)
        if os.getuid() == 0:
            os.chown(os.path.join(root, "control", "smarthostauth"), *MAIL_IDS)
        problems = [p for p in run_checks(root) if p.is_error]
        self.assertEqual([(os.path.basename(p.path), p.line) for p in problems],
                         [("smarthostauth", 1), ("smarthostauth", 2)])
        self.assertFalse(any("Pa55" in str(p) or "word" in str(p) for p in problems), problems)

    def test_showctl_masks_the_passwords(self) -> None:
        root = init_root(self)
        write(root, "control/smarthostauth", "smtp.example.net alice " + SECRET + "\n", mode=0o600)
        write(root, "control/smtproutes", ":smtp.example.net:587 auth=alice\n")
        out = io.StringIO()
        self.assertEqual(showctl.show(root, out), 0)
        listing = out.getvalue()
        self.assertIn("smarthostauth (file):\n    smtp.example.net alice ********\n", listing)
        self.assertIn(":smtp.example.net:587 auth=alice", listing)
        self.assertNotIn("Pa55", listing)
