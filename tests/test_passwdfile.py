"""Tests for pymta.passwdfile: parsing, hashing, the cred checker, set_password."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import bcrypt
from twisted.cred import error
from twisted.cred.credentials import IUsernameHashedPassword, UsernamePassword
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pymta import passwdfile
from pymta.passwdfile import (
    PasswdEntry,
    PasswdFileChecker,
    PasswdFileError,
    format_entry,
    hash_password,
    parse_line,
    parse_passwd,
    set_password,
    verify_password,
)


@implementer(IUsernameHashedPassword)
class _Apop:
    def __init__(self, username: bytes, stamp: bytes, digest: bytes) -> None:
        self.username, self.stamp, self.digest = username, stamp, digest

    def checkPassword(self, secret: bytes) -> bool:
        return hashlib.md5(self.stamp + secret).hexdigest().encode() == self.digest


class ParseTests(SynchronousTestCase):
    def test_dovecot_line(self) -> None:
        e = parse_line("alice:{PLAIN}s3cret:1000:100::/home/alice::userdb_quota=1G\n")
        self.assertEqual(
            e,
            PasswdEntry("alice", "{PLAIN}s3cret", 1000, 100, "/home/alice", "", "", "userdb_quota=1G"),
        )
        self.assertEqual(e.scheme, "PLAIN")
        self.assertEqual(e.maildir, "/home/alice/Maildir/")
        self.assertEqual(e.plaintext_secret(), b"s3cret")

    def test_short_line_and_comments(self) -> None:
        table = parse_passwd("# comment\n\nbob:{BLF-CRYPT}$2y$x\n")
        self.assertEqual(list(table), ["bob"])
        self.assertIsNone(table["bob"].uid)
        self.assertEqual(table["bob"].home, "")
        self.assertIsNone(table["bob"].plaintext_secret())

    def test_malformed_strict_names_line(self) -> None:
        e = self.assertRaises(PasswdFileError, parse_passwd, "ok:{PLAIN}x:1:1::/h::\nbad\n", "/p")
        self.assertEqual(e.lineno, 2)
        self.assertIn("/p:2:", str(e))
        self.assertRaises(PasswdFileError, parse_line, "u:{PLAIN}x:notanumber:1::/h::")

    def test_malformed_lenient_skips(self) -> None:
        table = parse_passwd("bad\nok:{PLAIN}x:1:1::/h::\nok:{PLAIN}y:1:1::/h::\n", strict=False)
        self.assertEqual(table["ok"].password, "{PLAIN}x")  # first wins

    def test_format_round_trip(self) -> None:
        e = PasswdEntry("u", "{PLAIN}p", 5, 6, "/h/u")
        self.assertEqual(format_entry(e), "u:{PLAIN}p:5:6::/h/u::")
        self.assertEqual(parse_line(format_entry(e)), e)
        self.assertRaises(PasswdFileError, format_entry, PasswdEntry("u", "x", 1, 1, "/a:b"))
        self.assertRaises(PasswdFileError, format_entry, PasswdEntry("a:b", "x", 1, 1, "/h"))


class HashTests(SynchronousTestCase):
    def test_argon2id(self) -> None:
        stored = hash_password("pässword")
        self.assertTrue(stored.startswith("{ARGON2ID}$argon2id$"))
        self.assertTrue(verify_password(stored, "pässword"))
        self.assertTrue(verify_password(stored, "pässword".encode()))
        self.assertFalse(verify_password(stored, "password"))

    def test_blf_crypt_and_dovecot_2y(self) -> None:
        stored = hash_password("pw", "blf-crypt")
        self.assertTrue(stored.startswith("{BLF-CRYPT}$2b$"))
        self.assertTrue(verify_password(stored, "pw"))
        self.assertFalse(verify_password(stored, "pw2"))
        dovecot = "{BLF-CRYPT}" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
        self.assertTrue(verify_password(dovecot, "pw"))
        self.assertFalse(verify_password(stored, "x" * 100))
        self.assertRaises(PasswdFileError, hash_password, "x" * 73, "BLF-CRYPT")

    def test_plain_and_unknown(self) -> None:
        self.assertTrue(verify_password("{PLAIN}abc", "abc"))
        self.assertTrue(verify_password("{CLEARTEXT}abc", b"abc"))
        self.assertFalse(verify_password("{PLAIN}abc", "abd"))
        self.assertFalse(verify_password("{SHA512-CRYPT}$6$x", "abc"))
        self.assertFalse(verify_password("{ARGON2ID}garbage", "abc"))
        self.assertFalse(verify_password("{BLF-CRYPT}garbage", "abc"))
        self.assertRaises(PasswdFileError, hash_password, "x", "MD5")


class CheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        with open(self.path, "w") as f:
            f.write("alice:{PLAIN}wonder:1000:1000::/home/alice::\n")
            f.write("bob:" + hash_password("builder", "BLF-CRYPT") + ":1001:1001::/home/bob::\n")
        self.checker = PasswdFileChecker(self.path, verify_in_thread=False)

    def test_good_password(self) -> None:
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(UsernamePassword(b"alice", b"wonder"))), "alice")
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(UsernamePassword("bob", "builder"))), "bob")

    def test_bad_password_and_unknown_user(self) -> None:
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"alice", b"x")), error.UnauthorizedLogin)
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"nobody", b"x")), error.UnauthorizedLogin)

    def test_apop_only_with_plaintext(self) -> None:
        stamp = b"<1.2@host>"
        ok = _Apop(b"alice", stamp, hashlib.md5(stamp + b"wonder").hexdigest().encode())
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(ok)), "alice")
        bad = _Apop(b"alice", stamp, b"0" * 32)
        self.failureResultOf(self.checker.requestAvatarId(bad), error.UnauthorizedLogin)
        hashed = _Apop(b"bob", stamp, hashlib.md5(stamp + b"builder").hexdigest().encode())
        self.failureResultOf(self.checker.requestAvatarId(hashed), error.UnauthorizedLogin)

    def test_rereads_on_change(self) -> None:
        self.assertIsNone(self.checker.lookup("carol"))
        set_password(self.path, "carol", "c", 7, 8, "/home/carol", scheme="PLAIN")
        self.assertEqual(self.checker.lookup(b"carol").uid, 7)
        self.assertEqual(self.checker.lookup("alice").home, "/home/alice")

    def test_missing_file(self) -> None:
        checker = PasswdFileChecker(self.mktemp(), verify_in_thread=False)
        self.assertIsNone(checker.lookup("alice"))
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"alice", b"x")), error.UnauthorizedLogin)



class ThreadedCheckerTests(TestCase):
    def test_verifies_in_thread_pool(self) -> Deferred:
        path = self.mktemp()
        set_password(path, "t", "pw", 1, 1, "/h", scheme="BLF-CRYPT")
        checker = PasswdFileChecker(path)
        d = checker.requestAvatarId(UsernamePassword(b"t", b"pw"))
        d.addCallback(self.assertEqual, "t")
        return d


    @inlineCallbacks
    def test_cancelled_check_ends_with_its_thread(self):  # type: ignore[no-untyped-def]
        """A cancelled check fails with CancelledError only once its thread is done (a bound on checks holds)."""
        path = self.mktemp()
        set_password(path, "t", "pw", 1, 1, "/h", scheme="PLAIN")
        checker = PasswdFileChecker(path)
        release = threading.Event()
        ran: list[str] = []

        def slow_verify(stored: str, password: bytes) -> bool:
            release.wait(30)
            ran.append("verified")
            return True

        d = checker._run(slow_verify, "x", b"y")
        d.cancel()
        self.assertNoResult(d)
        release.set()
        with self.assertRaises(CancelledError):
            yield d
        self.assertEqual(ran, ["verified"])


class SetPasswordTests(SynchronousTestCase):
    def test_create_then_replace_keeps_others(self) -> None:
        path = os.path.join(self.mktemp(), "users", "passwd")
        set_password(path, "a", "one", 10, 20, "/h/a", scheme="PLAIN")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        with open(path, "a") as f:
            f.write("# keep me\nb:{PLAIN}x:1:1:Gecos:/h/b:/bin/sh:extra=1\n")
        os.chmod(path, 0o600)
        set_password(path, "b", "two", 11, 21, "/h/b2", scheme="PLAIN")
        set_password(path, "a", "three", 10, 20, "/h/a")
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[1:], ["# keep me", "b:{PLAIN}two:11:21:Gecos:/h/b2:/bin/sh:extra=1"])
        self.assertTrue(lines[0].startswith("a:{ARGON2ID}$argon2id$"))
        self.assertTrue(lines[0].endswith(":10:20::/h/a::"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertTrue(verify_password(passwdfile.read_passwd(path)["a"].password, "three"))
        self.assertEqual([n for n in os.listdir(os.path.dirname(path)) if ".tmp." in n], [])

    def test_bad_input_leaves_file_alone(self) -> None:
        path = self.mktemp()
        set_password(path, "a", "one", 1, 1, "/h", scheme="PLAIN")
        with open(path, "rb") as f:
            before = f.read()
        self.assertRaises(PasswdFileError, set_password, path, "x:y", "p", 1, 1, "/h")
        self.assertRaises(PasswdFileError, set_password, path, "a", "p", 1, 1, "/h:x")
        self.assertRaises(PasswdFileError, set_password, path, "a", "p", 1, 1, "/h", scheme="NOPE")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)
