"""The spawner's request format and its own account checks (pymta.pop3d.spawnrequest, rootauth)."""

from __future__ import annotations

import hashlib
import os
import socket

from hypothesis import given, settings, strategies as st
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.pop3d import spawner
from pymta.pop3d.auth import Account, LoginKeepingAuthenticator
from pymta.pop3d.rootauth import (
    LoginDenied,
    PasswdFileSource,
    SystemAccount,
    check_home,
    confined_maildir,
)
from pymta.pop3d.spawnrequest import LoginRequest, encode_request, parse_request


class WireTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        for login in [
            LoginRequest("PASS", b"alice", b"p a\xffss"),
            LoginRequest("APOP", b"bob", b"0123456789abcdef0123456789abcdef", b"<1.2@host>"),
        ]:
            line = encode_request(7, login)
            self.assertTrue(line.endswith(b"\n"))
            self.assertEqual(parse_request(line[:-1]), (b"7", login))

    def test_password_never_in_repr(self) -> None:
        login = LoginRequest("PASS", b"alice", b"hunter2")
        self.assertNotIn("hunter2", repr(login))
        self.assertNotIn("hunter2", repr(Account("alice", 1, 1, "/h", login)))

    def test_out_of_bounds_not_encoded(self) -> None:
        for login in [
            LoginRequest("PASS", b"", b"x"),
            LoginRequest("PASS", b"a:b", b"x"),
            LoginRequest("PASS", b"a", b""),
            LoginRequest("PASS", b"a", b"x" * 513),
            LoginRequest("APOP", b"a", b"z" * 32, b"<a@b>"),
            LoginRequest("APOP", b"a", b"0" * 32, b"no brackets"),
            LoginRequest("ROOT", b"a", b"x"),
        ]:
            self.assertRaises(ValueError, encode_request, 1, login)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_lines_refused_cleanly(self, line: bytes) -> None:
        """Any line parses or raises ValueError - nothing else."""
        try:
            ident, login = parse_request(line)
        except ValueError:
            return
        login.check()

    def test_too_many_children(self) -> None:
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        self.patch(spawner, "MAX_CHILDREN", 0)
        line = encode_request(3, LoginRequest("PASS", b"alice", b"pw"))[:-1]
        spawner.handle_request(theirs, line, PasswdFileSource("/nonexistent"), set())
        self.assertEqual(ours.recv(100), b"ERR 3 too many mailbox sessions\n")


class PasswdFileSourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "w") as f:
            f.write("alice:{PLAIN}secret:1000:1001::/home/alice::\nnoids:{PLAIN}pw:::::\n")
        self.source = PasswdFileSource(self.path)

    def test_password(self) -> None:
        self.assertEqual(
            self.source.authenticate(LoginRequest("PASS", b"alice", b"secret")), SystemAccount(1000, 1001, "/home/alice")
        )
        self.assertRaises(LoginDenied, self.source.authenticate, LoginRequest("PASS", b"alice", b"Secret"))
        self.assertRaises(LoginDenied, self.source.authenticate, LoginRequest("PASS", b"eve", b"secret"))

    def test_apop(self) -> None:
        stamp = b"<9.9@x>"
        digest = hashlib.md5(stamp + b"secret").hexdigest().encode()
        account = self.source.authenticate(LoginRequest("APOP", b"alice", digest.upper(), stamp))
        self.assertEqual(account.uid, 1000)
        self.assertRaises(LoginDenied, self.source.authenticate, LoginRequest("APOP", b"alice", digest, b"<other@x>"))

    def test_missing_file_denies(self) -> None:
        os.remove(self.path)
        self.assertRaises(LoginDenied, self.source.authenticate, LoginRequest("PASS", b"alice", b"secret"))


class HomeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.home = os.path.realpath(self.mktemp())
        os.makedirs(os.path.join(self.home, "Maildir"))
        self.uid = os.getuid()

    def test_checks(self) -> None:
        for account in [
            SystemAccount(None, 5, self.home),
            SystemAccount(5, None, self.home),
            SystemAccount(0, 5, self.home),
            SystemAccount(5, 0, self.home),
            SystemAccount(5, 5, "relative/home"),
            SystemAccount(self.uid + 1, 5, self.home),  # not the home's owner
            SystemAccount(self.uid + 1, 5, os.path.join(self.home, "missing")),
        ]:
            self.assertRaises(LoginDenied, check_home, account)

    def test_home_owned_by_uid(self) -> None:
        uid = 4242 if self.uid == 0 else self.uid
        if self.uid == 0:
            os.chown(self.home, uid, uid)
        self.assertEqual(check_home(SystemAccount(uid, 4242, self.home)), self.home)

    def test_confined_maildir(self) -> None:
        self.assertEqual(confined_maildir(self.home), os.path.join(self.home, "Maildir", ""))
        inside = os.path.join(self.home, "real")
        os.rename(os.path.join(self.home, "Maildir"), inside)
        os.symlink("real", os.path.join(self.home, "Maildir"))
        self.assertEqual(confined_maildir(self.home), os.path.join(inside, ""))  # a link inside the home is fine
        os.remove(os.path.join(self.home, "Maildir"))
        for target in ("/", "..", os.path.dirname(self.home), "."):
            os.symlink(target, os.path.join(self.home, "Maildir"))
            self.assertRaises(LoginDenied, confined_maildir, self.home)
            os.remove(os.path.join(self.home, "Maildir"))


class LoginKeepingAuthenticatorTests(SynchronousTestCase):
    def test_accounts_carry_the_login(self) -> None:
        class Inner:
            def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
                return defer.succeed(Account(user.decode(), 5, 5, "/h"))

            def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred:
                return defer.succeed(Account(user.decode(), 5, 5, "/h"))

        auth = LoginKeepingAuthenticator(Inner())
        account = self.successResultOf(auth.check_password(b"alice", b"pw"))
        self.assertEqual(account.login, LoginRequest("PASS", b"alice", b"pw"))
        self.assertEqual(account, Account("alice", 5, 5, "/h"))
        account = self.successResultOf(auth.check_apop(b"bob", b"<1@x>", b"A" * 32))
        self.assertEqual(account.login, LoginRequest("APOP", b"bob", b"a" * 32, b"<1@x>"))


class CheckpasswordDeadlineTests(SynchronousTestCase):
    """The spawner's own checkpassword run is bounded, also after the program closed its output."""

    def run_source(self, script: str, timeout: float) -> tuple[str, float]:
        """Authenticate in a forked child (it resets SIGCHLD, which this process's reactor needs)."""
        import time

        from pymta.pop3d.rootauth import CheckpasswordSource
        from pymta.privsep import fork_child, wait_child

        program = os.path.abspath(self.mktemp())
        with open(program, "w") as f:
            f.write(script)
        os.chmod(program, 0o755)
        r, w = os.pipe()

        def child() -> int:
            os.close(r)
            try:
                CheckpasswordSource([program], timeout=timeout).authenticate(LoginRequest("PASS", b"alice", b"pw"))
                text = "accepted"
            except Exception as e:
                text = f"{type(e).__name__}: {e}"
            os.write(w, text.encode())
            return 0

        started = time.monotonic()
        pid = fork_child(child)
        os.close(w)
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        os.close(r)
        wait_child(pid)
        return data.decode(), time.monotonic() - started

    def test_program_that_closes_its_output_and_stays(self) -> None:
        text, took = self.run_source("#!/bin/sh\nexec >&-\nexec sleep 30\n", timeout=0.5)
        self.assertEqual(text, "LoginUnavailable: temporary authentication failure")
        self.assertLess(took, 20)

    def test_silent_program(self) -> None:
        text, took = self.run_source("#!/bin/sh\nexec sleep 30\n", timeout=0.5)
        self.assertEqual(text, "LoginUnavailable: temporary authentication failure")
        self.assertLess(took, 20)
