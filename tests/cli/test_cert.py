"""
Tests for C{pymta cert}: install, refusal, and the certbot deploy hook run as
certbot runs it (a child C{sh} with C{RENEWED_LINEAGE} naming a lineage laid
out as certbot lays it out).
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

from cryptography import x509
from twisted.trial import unittest

from pymta.cli import cert
from pymta.tls import load_server_options
from tests.acmecerts import Issued, issue, make_ca, write_lineage

PYMTA = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "pymta")


def make_root(base: str, me: str = "mx.example.org", queue_owner: tuple[int, int] | None = None) -> str:
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "control"))
    with open(os.path.join(root, "control", "me"), "w") as f:
        f.write(me + "\n")
    if queue_owner is not None:
        os.mkdir(os.path.join(root, "queue"))
        os.chown(os.path.join(root, "queue"), *queue_owner)
    return root


def served(root: str) -> x509.Certificate:
    """The certificate the daemons would load from ROOT/control/servercert.pem."""
    options = load_server_options(os.path.join(root, "control", "servercert.pem"))
    leaf: x509.Certificate = options.certificate.to_cryptography()
    return leaf


class InstallTests(unittest.TestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.ca = make_ca()

    def files(self, leaf: Issued, name: str = "a") -> tuple[str, str]:
        chain, key = os.path.join(self.base, name + "-fullchain.pem"), os.path.join(self.base, name + "-privkey.pem")
        with open(chain, "wb") as f:
            f.write(leaf.cert_pem() + self.ca.cert_pem())
        with open(key, "wb") as f:
            f.write(leaf.key_pem())
        return chain, key

    def run_cert(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = cert.main(list(argv))
        return status, out.getvalue(), err.getvalue()

    def test_installs_and_says_what(self) -> None:
        root = make_root(self.base)
        leaf = issue(self.ca, ["mx.example.org"])
        chain, key = self.files(leaf)
        status, out, err = self.run_cert("install", "--root", root, "--cert", chain, "--key", key)
        self.assertEqual((status, err), (0, ""))
        self.assertIn(f"installed {root}/control/servercert.pem (mx.example.org; expires ", out)
        self.assertIn("no running daemon found for this root", out)
        self.assertEqual(served(root), leaf.cert)
        st = os.stat(os.path.join(root, "control", "servercert.pem"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(os.path.join(root, "control"))), ["me", "servercert.pem"])

    def test_owned_by_the_daemons_account(self) -> None:
        if os.getuid() != 0:
            raise unittest.SkipTest("only root can give the file to the daemons' account")
        root = make_root(self.base, queue_owner=(4242, 4243))
        chain, key = self.files(issue(self.ca, ["mx.example.org"]))
        self.assertEqual(self.run_cert("install", "--root", root, "--cert", chain, "--key", key, "--no-reload")[0], 0)
        st = os.stat(os.path.join(root, "control", "servercert.pem"))
        self.assertEqual((st.st_uid, st.st_gid), (4242, 4243))

    def test_bad_pair_is_refused_and_old_file_kept(self) -> None:
        root = make_root(self.base)
        good = issue(self.ca, ["mx.example.org"])
        chain, key = self.files(good)
        self.assertEqual(self.run_cert("install", "--root", root, "--cert", chain, "--key", key)[0], 0)
        path = os.path.join(root, "control", "servercert.pem")
        with open(path, "rb") as f:
            before = f.read()
        _, other_key = self.files(issue(self.ca, ["mx.example.org"]), "b")
        expired_chain, expired_key = self.files(issue(self.ca, ["mx.example.org"], days=5, starts=-10), "c")
        for argv, reason in (
            (["--cert", chain, "--key", other_key], "no certificate in it matches the private key"),
            (["--cert", expired_chain, "--key", expired_key], "the certificate expired on"),
            (["--cert", chain, "--key", os.path.join(self.base, "absent.pem")], "No such file or directory"),
        ):
            status, out, err = self.run_cert("install", "--root", root, *argv)
            self.assertEqual(status, cert.EXIT_REFUSED)
            self.assertEqual(out, "")
            self.assertTrue(err.startswith(f"pymta cert: refused, {path} unchanged: "), err)
            self.assertIn(reason, err)
            self.assertEqual(err.count("\n"), 1)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), before)

    def test_other_names_warn_but_install(self) -> None:
        root = make_root(self.base)
        leaf = issue(self.ca, ["www.example.org"])
        chain, key = self.files(leaf)
        status, out, err = self.run_cert("install", "--root", root, "--cert", chain, "--key", key, "--no-reload")
        self.assertEqual(status, 0)
        self.assertIn("warning: ", err)
        self.assertIn("not mx.example.org (control/me)", err)
        self.assertEqual(served(root), leaf.cert)
        self.assertNotIn("running daemon", out)

    def test_only_for_me_skips_other_certificates(self) -> None:
        root = make_root(self.base)
        chain, key = self.files(issue(self.ca, ["www.example.org"]))
        status, out, err = self.run_cert("install", "--root", root, "--only-for-me", "--cert", chain, "--key", key)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("skipped", out)
        self.assertFalse(os.path.exists(os.path.join(root, "control", "servercert.pem")))

    def test_only_for_me_skips_another_hosts_broken_pair(self) -> None:
        root = make_root(self.base)
        web, stranger = issue(self.ca, ["www.example.org"]), issue(self.ca, ["www.example.org"])
        chain, _ = self.files(web)
        _, wrong_key = self.files(stranger, "b")
        status, out, err = self.run_cert("install", "--root", root, "--only-for-me", "--cert", chain, "--key", wrong_key)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("skipped", out)

    def test_only_for_me_still_refuses_a_bad_pair_for_this_host(self) -> None:
        root = make_root(self.base)
        chain, _ = self.files(issue(self.ca, ["mx.example.org"]))
        _, wrong_key = self.files(issue(self.ca, ["mx.example.org"]), "b")
        status, out, err = self.run_cert("install", "--root", root, "--only-for-me", "--cert", chain, "--key", wrong_key)
        self.assertEqual(status, cert.EXIT_REFUSED)
        self.assertIn("matches the private key", err)

    def test_only_for_me_without_control_me_is_refused(self) -> None:
        root = make_root(self.base)
        os.unlink(os.path.join(root, "control", "me"))
        chain, key = self.files(issue(self.ca, ["mx.example.org"]))
        status, _, err = self.run_cert("install", "--root", root, "--only-for-me", "--cert", chain, "--key", key)
        self.assertEqual(status, cert.EXIT_REFUSED)
        self.assertIn("control/me is empty", err)

    def test_not_a_root(self) -> None:
        chain, key = self.files(issue(self.ca, ["mx.example.org"]))
        status, _, err = self.run_cert("install", "--root", os.path.join(self.base, "nowhere"), "--cert", chain, "--key", key)
        self.assertEqual(status, cert.EXIT_REFUSED)
        self.assertIn("no such directory", err)

    def test_pidfile_that_names_no_process_fails_the_reload(self) -> None:
        root = make_root(self.base)
        chain, key = self.files(issue(self.ca, ["mx.example.org"]))
        pidfile = os.path.join(self.base, "gone.pid")
        with open(pidfile, "w") as f:
            f.write("999999999\n")
        status, out, err = self.run_cert("install", "--root", root, "--cert", chain, "--key", key, "--pidfile", pidfile)
        self.assertEqual(status, cert.EXIT_RELOAD_FAILED)
        self.assertIn("installed", out)
        self.assertIn(f"pymta cert: {pidfile}: not signalled", err)


class HookTests(unittest.TestCase):
    """The shipped hook, run by C{sh} as certbot runs it."""

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.root = make_root(self.base)
        self.letsencrypt = os.path.join(self.base, "letsencrypt")
        self.hook = os.path.join(self.base, "pymta-hook")
        with open(self.hook, "w") as f:
            f.write(cert.hook_text(PYMTA, self.root))
        os.chmod(self.hook, 0o755)
        self.ca = make_ca()

    def run_hook(self, lineage: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "RENEWED_LINEAGE"}
        if lineage is not None:
            env["RENEWED_LINEAGE"] = lineage
        return subprocess.run([self.hook], env=env, capture_output=True, text=True, timeout=60)

    def test_renewals_install_and_a_bad_one_is_refused(self) -> None:
        first = issue(self.ca, ["mx.example.org"])
        done = self.run_hook(write_lineage(self.letsencrypt, "mx.example.org", first, self.ca, 1))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(served(self.root), first.cert)

        second = issue(self.ca, ["mx.example.org"])
        done = self.run_hook(write_lineage(self.letsencrypt, "mx.example.org", second, self.ca, 2))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(served(self.root), second.cert)

        expired = issue(self.ca, ["mx.example.org"], days=1, starts=-3)
        done = self.run_hook(write_lineage(self.letsencrypt, "mx.example.org", expired, self.ca, 3))
        self.assertEqual(done.returncode, cert.EXIT_REFUSED)
        self.assertIn("refused", done.stderr)
        self.assertIn("expired", done.stderr)
        self.assertEqual(served(self.root), second.cert)

    def test_other_lineage_is_left_alone(self) -> None:
        mine = issue(self.ca, ["mx.example.org"])
        self.assertEqual(self.run_hook(write_lineage(self.letsencrypt, "mx.example.org", mine, self.ca)).returncode, 0)
        web = issue(self.ca, ["www.example.org"])
        done = self.run_hook(write_lineage(self.letsencrypt, "www.example.org", web, self.ca))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("skipped", done.stdout)
        self.assertEqual(served(self.root), mine.cert)

    def test_without_renewed_lineage_it_fails(self) -> None:
        done = self.run_hook(None)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("RENEWED_LINEAGE", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "control", "servercert.pem")))

    def test_hook_command_prints_the_hook(self) -> None:
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(cert.main(["hook", "--root", self.root, "--pymta", "/opt/pymta/bin/pymta"]), 0)
        text = out.getvalue()
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        self.assertIn(f"exec /opt/pymta/bin/pymta cert install --root {self.root} --only-for-me", text)
        self.assertNotIn("@", text.replace("'", ""))

    def test_hook_refuses_paths_it_cannot_quote(self) -> None:
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            status = cert.main(["hook", "--root", "/var/my pymta"])
        self.assertEqual(status, cert.EXIT_REFUSED)
        self.assertIn("--root '/var/my pymta'", err.getvalue())
