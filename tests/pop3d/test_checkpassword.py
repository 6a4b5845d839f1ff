"""Checkpassword authentication with small real checkpassword programs."""

from __future__ import annotations

import hashlib
import os
import sys

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from pymta.pop3d.auth import LoginFailed, LoginTemporaryFailure
from pymta.pop3d.checkpassword import CheckpasswordAuthenticator

CHECKPASSWORD = """#!{python}
# A minimal checkpassword: alice/secret (APOP with the same secret); exits as the spec says.
import hashlib, os, sys
data = b""
while True:
    chunk = os.read(3, 512)
    if not chunk:
        break
    data += chunk
user, password, stamp = data.split(b"\\0")[:3]
if user == b"crash":
    os.kill(os.getpid(), 9)
if user == b"busy":
    sys.exit(111)
if user == b"noexec":
    sys.exit(0)
if user == b"slow":
    with open(os.path.join({home!r}, "slow.pid"), "w") as f:
        f.write(str(os.getpid()))
    import time
    time.sleep(60)
ok = password == b"secret" if not stamp else password == hashlib.md5(stamp + b"secret").hexdigest().encode()
if user != b"alice" or not ok:
    sys.exit(1)
UID = {uid!r}
if UID is not None:
    os.setgroups([UID])
    os.setgid(UID)
    os.setuid(UID)
os.environ["HOME"] = {home!r}
os.environ["USER"] = "alice"
os.chdir({home!r})
os.execvp(sys.argv[1], sys.argv[1:])
"""


def write_checkpassword(path: str, home: str, uid: int | None = None) -> str:
    """A checkpassword for alice/secret; with C{uid} it switches to that uid/gid like a real one."""
    with open(path, "w") as f:
        f.write(CHECKPASSWORD.format(python=sys.executable, home=home, uid=uid))
    os.chmod(path, 0o755)
    return path


class CheckpasswordTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        program = write_checkpassword(os.path.abspath(self.mktemp()), self.home)
        self.auth = CheckpasswordAuthenticator(reactor, [program])

    @defer.inlineCallbacks
    def test_password_ok_reports_account(self):  # type: ignore[no-untyped-def]
        account = yield self.auth.check_password(b"alice", b"secret")
        self.assertEqual((account.name, account.uid, account.gid, account.home), ("alice", os.getuid(), os.getgid(), self.home))
        self.assertEqual(account.maildir, os.path.join(self.home, "Maildir", ""))

    @defer.inlineCallbacks
    def test_wrong_password(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(LoginFailed):
            yield self.auth.check_password(b"alice", b"nope")
        with self.assertRaises(LoginFailed):
            yield self.auth.check_password(b"al\0ice", b"secret")

    @defer.inlineCallbacks
    def test_cancel_kills_the_program(self):  # type: ignore[no-untyped-def]
        """A check abandoned by its client kills checkpassword; the Deferred fails once it has ended."""
        d = self.auth.check_password(b"slow", b"x")
        pidfile = os.path.join(self.home, "slow.pid")
        for _ in range(500):
            if os.path.exists(pidfile) and os.path.getsize(pidfile):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        with open(pidfile) as f:
            pid = int(f.read())
        d.cancel()
        with self.assertRaises(defer.CancelledError):
            yield d
        # reaped: the pid is no longer a child of ours
        with self.assertRaises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    @defer.inlineCallbacks
    def test_apop_gets_timestamp(self):  # type: ignore[no-untyped-def]
        stamp = b"<1.2@x>"
        account = yield self.auth.check_apop(b"alice", stamp, hashlib.md5(stamp + b"secret").hexdigest().encode())
        self.assertEqual(account.home, self.home)
        with self.assertRaises(LoginFailed):
            yield self.auth.check_apop(b"alice", stamp, b"0" * 32)

    @defer.inlineCallbacks
    def test_temporary_and_crash(self):  # type: ignore[no-untyped-def]
        with self.assertRaises(LoginTemporaryFailure) as e:
            yield self.auth.check_password(b"busy", b"x")
        self.assertEqual(str(e.exception), "temporary authentication failure")
        with self.assertRaises(LoginTemporaryFailure) as e:
            yield self.auth.check_password(b"crash", b"x")
        self.assertEqual(str(e.exception), "aack, child crashed")
        with self.assertRaises(LoginTemporaryFailure) as e:
            yield self.auth.check_password(b"noexec", b"x")
        self.assertEqual(str(e.exception), "checkpassword gave no account")

    def test_missing_program_refused_at_setup(self) -> None:
        self.assertRaises(ValueError, CheckpasswordAuthenticator, reactor, [os.path.abspath(self.mktemp())])
        self.assertRaises(ValueError, CheckpasswordAuthenticator, reactor, ["relative/prog"])
        self.assertRaises(ValueError, CheckpasswordAuthenticator, reactor, [])
