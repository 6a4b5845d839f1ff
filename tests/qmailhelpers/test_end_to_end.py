"""
The .qmail helpers end to end: C{twistd pymta} as a real process, mail in
over SMTP, each helper on a C{.qmail} line of a mailbox user, and the result
read from the user's files and the qmail-send log: delivered, forwarded
(through the queue, with qmail's Delivered-To and sender), or bounced back
to the sender with the helper's text.  C{|preline procmail} uses Debian's
procmail (installed when the suite runs as root).

When the suite runs as root, deliveries run as the mail uid 4242; that uid
must be able to run the interpreter pymta runs on (the helpers are Python).
A test interpreter under a private directory (such as /root) cannot be, so
then pymta runs on the system's python3 with this venv's packages added
(L{delivery_python}), as an installed pymta runs on an interpreter every
user may run.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from tests.packages import ensure_program
from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for

MAIL_UID = 4242


def _runs_as(python: str, uid: int) -> bool:
    try:
        done = subprocess.run([python, "-c", "import pymta.qmailhelpers, twisted.internet.defer"], user=uid, group=uid,
                              cwd="/", capture_output=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0


def delivery_python(base: str, uid: int | None) -> str:
    """An interpreter with pymta and its packages that C{uid} (None: this process's uid) may run."""
    if uid is None or _runs_as(sys.executable, uid):
        return sys.executable
    system = shutil.which("python3", path="/usr/bin:/bin")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if system is None:
        raise unittest.SkipTest(f"uid {uid} cannot run {sys.executable} and there is no system python3")
    venv = os.path.join(base, "venv")
    subprocess.run([system, "-m", "venv", "--without-pip", venv], check=True, capture_output=True, timeout=120)
    python = os.path.join(venv, "bin", "python")
    found = subprocess.run([python, "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    if found != version:
        raise unittest.SkipTest(f"uid {uid} cannot run {sys.executable} and the system python3 is {found}, not {version}")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
    with open(os.path.join(site, "pymta-test-packages.pth"), "w") as f:
        f.write("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in ours) + "\n")
    if not _runs_as(python, uid):
        raise unittest.SkipTest(f"uid {uid} cannot run {sys.executable} nor a system python3 with its packages")
    return python


class HelpersFixture(unittest.SynchronousTestCase):
    """A pymta root with the mailbox user alice (Maildirs fwd, cond, rest, bounces) and a way to run twistd pymta on it."""

    def setUp(self) -> None:
        # short (UNIX socket paths are limited to 107 bytes) and traversable by the mail uid
        base = tempfile.mkdtemp(prefix="pymta-qh-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = root = os.path.join(base, "root")
        self.owner = (MAIL_UID, MAIL_UID) if os.getuid() == 0 else None
        self.python = delivery_python(base, self.owner[0] if self.owner else None)
        init = [root, "--me", "test.example", "--user", "alice:secret"]
        if self.owner:
            init += ["--mail-uid", f"{MAIL_UID}:{MAIL_UID}"]
        subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                       stdout=subprocess.DEVNULL)
        self.home = os.path.join(root, "home", "alice")
        for maildir in ("fwd", "cond", "rest", "bounces"):
            for sub in ("tmp", "new", "cur"):
                self.mkdir(os.path.join(maildir, sub))
        self.dotqmail("bounces", "./bounces/\n")

    def mkdir(self, relative: str) -> None:
        path = os.path.join(self.home, relative)
        os.makedirs(path, mode=0o700, exist_ok=True)
        if self.owner:
            for part in (relative.split("/")[0], relative):
                os.chown(os.path.join(self.home, part), *self.owner)

    def write(self, relative: str, text: str) -> None:
        path = os.path.join(self.home, relative)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        if self.owner:
            os.chown(path, *self.owner)

    def dotqmail(self, ext: str, text: str) -> None:
        self.write(f".qmail-{ext}", text)

    def start(self) -> None:
        self.smtp = smtp = free_port()
        self.log = log = os.path.join(self.root, "twistd.log")
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        start_twistd(self, [self.python, "-c", twistd],
                     ["pymta", "--root", self.root,
                      "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                      "--submission", f"tcp:{free_port()}:interface=127.0.0.1",
                      "--pop3", f"tcp:{free_port()}:interface=127.0.0.1"], log, [smtp])

    def send(self, rcpt: str, subject: str, sender: str = "alice-bounces@test.example") -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
            client.sendmail(sender, [rcpt], f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")

    def maildir(self, name: str, count: int) -> list[bytes]:
        new = os.path.join(self.home, name, "new")
        wait_for(lambda: len(os.listdir(new)) >= count, 60, f"{count} message(s) in {name}/", self.log)
        out = []
        for entry in sorted(os.listdir(new)):
            with open(os.path.join(new, entry), "rb") as f:
                out.append(f.read())
        return out

    def uid(self) -> int:
        """The uid deliveries (and so the helpers) run as."""
        return self.owner[0] if self.owner else os.getuid()

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()


class HelpersEndToEndTests(HelpersFixture):
    def test_preline_procmail(self) -> None:
        if ensure_program("procmail", "procmail") is None:
            raise unittest.SkipTest("procmail is not installed (the suite installs it when run as root on Debian)")
        # absolute paths: procmail takes HOME from the password database, which has no entry for the mail uid
        self.write("procmailrc", f"MAILDIR={self.home}\nLOGFILE={self.home}/procmail.log\n:0:\n{self.home}/procmail.mbox\n")
        self.dotqmail("procmail", "|preline procmail -m ./procmailrc\n")
        self.dotqmail("nofrom", "|preline -f cat > nofrom.txt\n")
        self.start()
        self.send("alice-procmail@test.example", "through procmail", sender="sender@remote.example")
        self.send("alice-nofrom@test.example", "without From_", sender="")
        mbox = os.path.join(self.home, "procmail.mbox")
        wait_for(lambda: os.path.exists(mbox) and b"body of through procmail" in open(mbox, "rb").read(), 60,
                 "procmail's delivery", self.log)
        with open(mbox, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertRegex(lines[0].decode(), r"^From sender@remote\.example [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}$")
        self.assertEqual(lines[1:3], [b"Return-Path: <sender@remote.example>",
                                      b"Delivered-To: alice-procmail@test.example"])
        self.assertIn(b"Subject: through procmail", lines)
        if self.owner:
            self.assertEqual(os.stat(mbox).st_uid, MAIL_UID)
        out = os.path.join(self.home, "nofrom.txt")
        wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 60, "preline -f", self.log)
        with open(out, "rb") as f:
            self.assertEqual(f.read().split(b"\n")[:2], [b"Return-Path: <>", b"Delivered-To: alice-nofrom@test.example"])
        # (procmail itself may print a complaint about the mail uid, which has no password entry)
        wait_for(lambda: len(re.findall(r": success: (\S*/)?did_0\+0\+1/", self.logged())) >= 2, 30,
                 "two program successes", self.log)

    def test_forward_condredirect_bouncesaying_except(self) -> None:
        self.dotqmail("fwd", "|forward alice-fwdbox@test.example\n")
        self.dotqmail("fwdbox", "./fwd/\n")
        self.dotqmail("cond", "|condredirect alice-condbox@test.example grep -q '^Subject: redirect me'\n./rest/\n")
        self.dotqmail("condbox", "./cond/\n")
        self.dotqmail("closed", "|bouncesaying 'This address is closed. (#5.1.1)'\n")
        self.dotqmail("filter", "|except grep -q '^Subject: reject me'\n./rest/\n")
        self.start()
        self.send("alice-fwd@test.example", "forwarded", sender="sender@remote.example")
        self.send("alice-cond@test.example", "redirect me", sender="sender@remote.example")
        self.send("alice-cond@test.example", "keep me")
        self.send("alice-closed@test.example", "closed")
        self.send("alice-filter@test.example", "reject me")
        self.send("alice-filter@test.example", "let me in")

        # forward: the queue takes it again from NEWSENDER, with the first Delivered-To line
        [forwarded] = self.maildir("fwd", 1)
        self.assertRegex(forwarded, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-fwdbox@test.example\n"
                                    rb"Received: \(pymta \d+ invoked by uid %d\); [^\n]*\n"
                                    rb"Delivered-To: alice-fwd@test.example\n" % self.uid())
        # condredirect: redirected from SENDER when the program exits 0, the next line otherwise
        [redirected] = self.maildir("cond", 1)
        self.assertRegex(redirected, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-condbox@test.example\n"
                                     rb"Received: \(pymta \d+ invoked by uid %d\); [^\n]*\n"
                                     rb"Delivered-To: alice-cond@test.example\n" % self.uid())
        self.assertIn(b"body of redirect me", redirected)
        kept = self.maildir("rest", 2)
        self.assertEqual(sorted(b"body of keep me" in m for m in kept), [False, True])
        self.assertEqual(sorted(b"body of let me in" in m for m in kept), [False, True])
        # bouncesaying and except: bounced to the sender with the helper's text
        bounces = self.maildir("bounces", 2)
        closed = [m for m in bounces if b"<alice-closed@test.example>" in m]
        rejected = [m for m in bounces if b"<alice-filter@test.example>" in m]
        self.assertEqual((len(closed), len(rejected)), (1, 1))
        self.assertIn(b"This address is closed. (#5.1.1)", closed[0])
        self.assertIn(b"Subject: reject me", rejected[0])
        self.assertEqual(len(os.listdir(os.path.join(self.home, "cond", "new"))), 1)

        wait_for(lambda: self.logged().count("end msg ") >= 10, 60, "every message to finish", self.log)
        text = self.logged()
        self.assertRegex(text, r": success: forward:_qp_\d+/did_0\+0\+1/")
        self.assertRegex(text, r": success: condredirect:_qp_\d+/did_0\+0\+1/")
        self.assertIn(": failure: This_address_is_closed._(#5.1.1)", text)
        self.assertNotIn(": deferral: ", text)
        self.assertEqual(len(re.findall(r": failure: ", text)), 2)
