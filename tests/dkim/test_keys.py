"""control/dkimkeys and its key files: the text, the key forms, mode and owner, and the start/reload checks."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError, ControlReader, load_controls
from pymta.dkim.keys import ED25519, RSA, key_entries, load_signing_keys, read_key
from pymta.dkim.signing import DKIMSigning
from pymta.secretfile import secret_file_problem
from tests.dkim.helpers import ed25519_key, pem, rsa_key, write_keys
from tests.smtpd.helpers import make_root

ACCOUNT = (os.getuid(), os.getgid())


class EntriesTests(SynchronousTestCase):
    def test_lines(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()), dkimkeys="# keys\nExample.COM:s1:dkim/a.key\nexample.com:s-2.x:/k/b.key")
        entries = key_entries(load_controls(root))
        self.assertEqual([(e.domain, e.selector) for e in entries], [("example.com", "s1"), ("example.com", "s-2.x")])
        self.assertEqual(entries[0].path, os.path.join(root, "control", "dkim/a.key"))
        self.assertEqual(entries[1].path, "/k/b.key")
        self.assertEqual(key_entries(load_controls(make_root(os.path.abspath(self.mktemp())))), ())

    def test_bad_lines_are_named(self) -> None:
        for line, reason in (("example.com:s1", "expected DOMAIN:SELECTOR:KEYFILE"),
                             ("exa mple.com:s1:k", "bad domain"), ("example.com:s_1:k", "bad selector"),
                             ("example.com:s1:", "no key file"), ("example.com:S1:other", "repeats entry 1")):
            root = make_root(os.path.abspath(self.mktemp()), dkimkeys=f"example.com:s1:k\n\n{line}")
            error = self.assertRaises(ControlError, key_entries, load_controls(root))
            self.assertEqual(error.lineno, 3, line)
            self.assertIn(reason, str(error), line)
            self.assertIn("dkimkeys", error.path)


class ReadKeyTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(read_key(pem(rsa_key()))[0], RSA)
        self.assertEqual(read_key(pem(rsa_key(), serialization.PrivateFormat.TraditionalOpenSSL))[0], RSA)
        self.assertTrue(read_key(pem(rsa_key()))[1].startswith(b"-----BEGIN RSA PRIVATE KEY-----"))
        algorithm, seed = read_key(pem(ed25519_key()))
        self.assertEqual(algorithm, ED25519)
        self.assertEqual(read_key(seed + b"\n"), (ED25519, seed))  # dknewkey's form

    def test_refused(self) -> None:
        for data, reason in ((b"garbage!", "neither PEM"), (base64.b64encode(b"x" * 31), "32 bytes"),
                             (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a usable PEM"),
                             (pem(ec.generate_private_key(ec.SECP256R1())), "RSA or Ed25519")):
            error = self.assertRaises(ValueError, read_key, data)
            self.assertIn(reason, str(error))


class KeyFileTests(SynchronousTestCase):
    def test_loaded_by_domain(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        write_keys(root)
        keys = load_signing_keys(load_controls(root), ACCOUNT)
        self.assertEqual([(k.selector, k.algorithm) for k in keys["example.com"]], [("r1", RSA), ("e1", ED25519)])

    def test_a_key_others_may_read_is_refused_naming_the_line(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        write_keys(root)
        os.chmod(os.path.join(root, "etc", "dkim", "example.com.e1.key"), 0o640)
        error = self.assertRaises(ControlError, load_signing_keys, load_controls(root), ACCOUNT)
        self.assertEqual(error.lineno, 3)
        self.assertIn("mode 0640", str(error))

    def test_the_rule(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("k")
        os.chmod(path, 0o600)
        self.assertIsNone(secret_file_problem(path, ACCOUNT))
        other = secret_file_problem(path, (ACCOUNT[0] + 1, ACCOUNT[1] + 1)) or ""
        self.assertIn("not the mail account's group" if os.getuid() == 0 else "not by uid", other)
        self.assertEqual(secret_file_problem(path + ".no", ACCOUNT), "no such file")
        os.symlink(path, path + ".link")
        self.assertIn("not a regular file", secret_file_problem(path + ".link", ACCOUNT) or "")
        if os.getuid() == 0:  # root's file with the mail account's group: 0640 at most
            mail = (4242, 4243)
            os.chown(path, 0, 4243)
            os.chmod(path, 0o640)
            self.assertIsNone(secret_file_problem(path, mail))
            os.chmod(path, 0o644)
            self.assertIn("chmod 640", secret_file_problem(path, mail) or "")
            os.chown(path, 0, 0)
            self.assertIn("not the mail account's group", secret_file_problem(path, mail) or "")


class KeyFileSwapTests(SynchronousTestCase):
    """The key file is judged on what was opened: a file swapped for a link after a check is refused."""

    def test_a_link_swapped_in_after_the_check_is_refused(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        write_keys(root)
        path = os.path.join(root, "etc", "dkim", "example.com.r1.key")
        good = os.lstat(path)
        readable = path + ".anyone"
        os.rename(path, readable)
        os.chmod(readable, 0o644)
        os.symlink(readable, path)
        real_lstat = os.lstat
        # a check by path would have seen the good file, the link came just after it
        self.patch(os, "lstat", lambda p, *a, **k: good if p == path else real_lstat(p, *a, **k))
        error = self.assertRaises(ControlError, load_signing_keys, load_controls(root), ACCOUNT)
        self.assertIn("not a regular file", str(error))

    def test_a_fifo_is_refused_without_blocking(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        write_keys(root)
        path = os.path.join(root, "etc", "dkim", "example.com.r1.key")
        os.unlink(path)
        os.mkfifo(path, 0o600)
        error = self.assertRaises(ControlError, load_signing_keys, load_controls(root), ACCOUNT)
        self.assertIn("not a regular file", str(error))


class ReloadTests(SynchronousTestCase):
    def test_signing_follows_reloads_and_a_bad_key_keeps_the_old(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        reader = ControlReader(root)
        signing = DKIMSigning.for_reader(reader, load=lambda c: load_signing_keys(c, ACCOUNT))
        self.assertFalse(signing.active)
        write_keys(root)
        reader.reload()
        self.assertEqual(len(signing.keys["example.com"]), 2)
        os.chmod(os.path.join(root, "etc", "dkim", "example.com.r1.key"), 0o644)
        self.assertRaises(ControlError, reader.reload)
        self.assertEqual(len(signing.keys["example.com"]), 2)

    def test_a_bad_key_stops_the_start(self) -> None:
        root = make_root(os.path.abspath(self.mktemp()))
        write_keys(root)
        os.chmod(os.path.join(root, "etc", "dkim", "example.com.r1.key"), 0o604)
        self.assertRaises(ControlError, DKIMSigning.for_reader, ControlReader(root),
                          load=lambda c: load_signing_keys(c, ACCOUNT))

    def test_a_signing_failure_leaves_the_message_unsigned(self) -> None:
        signing = DKIMSigning({"example.com": ()})
        signing.keys = None  # type: ignore[assignment]  # sign_message fails on it
        self.assertEqual(self.successResultOf(signing.sign(b"From: a@example.com\n\nx\n")), ())
        self.assertEqual(len(self.flushLoggedErrors()), 1)
