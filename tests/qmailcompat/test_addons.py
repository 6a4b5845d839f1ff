"""
qmail's add-ons from Debian behind a running C{twistd pymta}: mail in over
SMTP, the add-on on a C{.qmail} line, the result read from the mailboxes
and the qmail-send log.  Debian's dot-forward and fastforward queue through
C{/var/lib/qmail/bin/qmail-queue} (L{tests.qmailcompat.helpers}), so these
tests need root, as the .qmail helpers' end-to-end tests' real uids do.

The site is the one of L{tests.qmailhelpers.test_end_to_end} (its setUp,
start, send and mailbox readers are reused as they are): alice (the mail
uid) with Maildirs C{fwd}, C{cond}, C{rest}, C{bounces} in her home, plus
bob, a user with a uid of his own.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys

from twisted.trial import unittest

from pymta.local.program import QMAILQUEUE_PROGRAM
from tests.packages import ensure_program
from tests.qmailcompat.helpers import real_compat_dir
from tests.qmailhelpers import test_end_to_end as site
from tests.test_end_to_end import SRC, wait_for

BOB_UID = 4243
CRON_UID = 4244


def add_user(root: str, name: str, uid: int, gid: int) -> str:
    """A user with a uid of its own, the home beside alice's (users/assign, then pymta newu); the home."""
    home = os.path.join(root, "home", name)
    os.makedirs(os.path.join(home, "Maildir"), mode=0o700)
    os.chown(home, uid, gid)
    assign = os.path.join(root, "users", "assign")
    with open(assign) as f:
        lines = [line for line in f.read().splitlines() if line != "."]
    lines += [f"={name}:{name}:{uid}:{gid}:{home}:::", f"+{name}-:{name}:{uid}:{gid}:{home}:-::", "."]
    with open(assign, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "pymta.cli.main", "newu", "--root", root], check=True, cwd=SRC,
                   stdout=subprocess.DEVNULL)
    return home


def received(uid: int) -> bytes:
    """qmail-queue's Received line with pymta's name, as a pattern: the invoking uid and a qmail date."""
    return rb"Received: \(pymta \d+ invoked by uid %d\); \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n" % uid


class AddOnsEndToEndTests(unittest.SynchronousTestCase):
    setUp_site = site.HelpersEndToEndTests.setUp
    mkdir = site.HelpersEndToEndTests.mkdir
    write = site.HelpersEndToEndTests.write
    dotqmail = site.HelpersEndToEndTests.dotqmail
    start = site.HelpersEndToEndTests.start
    send = site.HelpersEndToEndTests.send
    maildir = site.HelpersEndToEndTests.maildir
    logged = site.HelpersEndToEndTests.logged

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise unittest.SkipTest("needs root: Debian's add-ons run /var/lib/qmail/bin/qmail-queue, which root writes")
        self.setUp_site()
        self.compat = real_compat_dir(self, self.root, self.python)
        self.mkdir("lists/tmp")
        for sub in ("new", "cur"):
            self.mkdir(f"lists/{sub}")

    def program(self, name: str, package: str) -> str:
        path = ensure_program(name, package)
        if path is None:
            raise unittest.SkipTest(f"{name} is not installed (package {package}; the suite installs it as root on Debian)")
        return path

    def read_home(self, name: str, what: str) -> bytes:
        path = os.path.join(self.home, name)
        wait_for(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 60, what, self.log)
        with open(path, "rb") as f:
            return f.read()

    def test_dot_forward(self) -> None:
        # Debian's own program by its path: the bare name is pymta's dot-forward (first on the PATH of deliveries)
        original = self.program("/usr/bin/dot-forward", "dot-forward")
        # a .forward with an address and a program: forwarded, the program run, and dot-forward exits 99
        self.write(".forward", 'alice-fwdbox@test.example, "|cat > dfprog.txt"\n')
        self.dotqmail("df", f"|{original} .forward\n./rest/\n")
        self.dotqmail("fwdbox", "./fwd/\n")
        # delivery to the user herself: dot-forward exits 0 and the next line delivers
        self.write(".forward-me", "alice\n")
        self.dotqmail("dfme", f"|{original} .forward-me\n./rest/\n")
        self.start()
        self.send("alice-df@test.example", "dot forwarded", sender="sender@remote.example")
        self.send("alice-dfme@test.example", "to me", sender="sender@remote.example")

        [forwarded] = self.maildir("fwd", 1)
        self.assertRegex(forwarded, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-fwdbox@test.example\n"
                                    + received(self.uid()) + rb"Delivered-To: alice-df@test.example\n")
        self.assertIn(b"body of dot forwarded", forwarded)
        program = self.read_home("dfprog.txt", "dot-forward's program")
        self.assertRegex(program, rb"^From sender@remote.example [^\n]+\nReturn-Path: <sender@remote.example>\n"
                                  rb"Delivered-To: alice-df@test.example\n")
        [kept] = self.maildir("rest", 1)
        self.assertIn(b"body of to me", kept)
        wait_for(lambda: self.logged().count("end msg ") >= 3, 60, "every message to finish", self.log)
        self.assertNotIn(": deferral: ", self.logged())
        self.assertEqual(len(os.listdir(os.path.join(self.home, "rest", "new"))), 1)

    def test_fastforward_with_setforward_cdb(self) -> None:
        # the bare name is pymta's fastforward, which hands a cdb it cannot read to Debian's program on the PATH
        self.program("/usr/bin/fastforward", "fastforward")
        setforward = self.program("setforward", "fastforward")
        table = ("fwd@test.example: alice-fwdbox@test.example;\n"
                 "list@test.example: alice-fwdbox@test.example, alice-listbox@test.example;\n"
                 "prog@test.example: |cat > ffprog.txt;\n")
        made = subprocess.run([setforward, os.path.join(self.home, "aliases.cdb"), os.path.join(self.home, "aliases.tmp")],
                              input=table.encode(), capture_output=True, timeout=60)
        self.assertEqual(made.returncode, 0, made.stderr)
        os.chown(os.path.join(self.home, "aliases.cdb"), self.uid(), self.uid())
        self.dotqmail("ff-default", "|fastforward -d aliases.cdb\n")
        self.dotqmail("fwdbox", "./fwd/\n")
        self.dotqmail("listbox", "./lists/\n")
        self.start()
        self.send("alice-ff-fwd@test.example", "one forward", sender="sender@remote.example")
        self.send("alice-ff-list@test.example", "a list", sender="sender@remote.example")
        self.send("alice-ff-prog@test.example", "a program", sender="sender@remote.example")
        self.send("alice-ff-nobody@test.example", "nobody")

        forwarded = self.maildir("fwd", 2)
        one = [m for m in forwarded if b"body of one forward" in m]
        self.assertEqual(len(one), 1)
        # fastforward forwards from SENDER with the Delivered-To line, through qmail-queue
        self.assertRegex(one[0], rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-fwdbox@test.example\n"
                                 + received(self.uid()) + rb"Delivered-To: alice-ff-fwd@test.example\n")
        [listed] = self.maildir("lists", 1)
        self.assertRegex(listed, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-listbox@test.example\n"
                                 + received(self.uid()) + rb"Delivered-To: alice-ff-list@test.example\n")
        self.assertEqual(sum(b"body of a list" in m for m in forwarded), 1)
        self.assertIn(b"body of a program", self.read_home("ffprog.txt", "fastforward's program"))
        # not in the table: fastforward bounces, as under qmail
        [bounce] = self.maildir("bounces", 1)
        self.assertIn(b"<alice-ff-nobody@test.example>", bounce)
        wait_for(lambda: self.logged().count("end msg ") >= 7, 60, "every message to finish", self.log)
        self.assertNotIn(": deferral: ", self.logged())
        self.assertEqual(len(re.findall(r": failure: ", self.logged())), 1)

    def test_preline_through_the_compat_path(self) -> None:
        self.dotqmail("pl", f"|{self.compat}/bin/preline cat > preline.txt\n")
        self.start()
        self.send("alice-pl@test.example", "prelined", sender="sender@remote.example")
        text = self.read_home("preline.txt", "preline's output")
        self.assertRegex(text, rb"^From sender@remote.example [^\n]+\nReturn-Path: <sender@remote.example>\n"
                               rb"Delivered-To: alice-pl@test.example\n")
        self.assertIn(b"body of prelined", text)

    def test_qmailqueue_names_the_programs_uid(self) -> None:
        # bob's program runs $QMAILQUEUE (pymta's qmail-queue) and, besides, asks the inject socket
        # outright for another identity: both messages are recorded as bob's uid
        home = add_user(self.root, "bob", BOB_UID, BOB_UID)
        claim = (f"{self.python} -P -c 'import io, os; from pymta.queue.client import enqueue; "
                 "enqueue(os.environ[\"PYMTA_ROOT\"], io.BytesIO(b\"Subject: claimed\\n\\nclaim\\n\"), "
                 "\"root@test.example\", [\"alice-rest@test.example\"], origin=\"by uid 0\")'")
        program = ("printf 'Fbob@test.example\\0Talice-rest@test.example\\0\\0' > env.bin; "
                   f'test "$QMAILQUEUE" = {QMAILQUEUE_PROGRAM} && "$QMAILQUEUE" 1< env.bin && {claim}\n')
        path = os.path.join(home, ".qmail-q")
        with open(path, "w") as f:
            f.write("|" + program)
        os.chown(path, BOB_UID, BOB_UID)
        self.dotqmail("rest", "./rest/\n")
        self.start()
        self.send("bob-q@test.example", "through qmail-queue", sender="sender@remote.example")
        kept = self.maildir("rest", 2)
        queued = [m for m in kept if b"body of through qmail-queue" in m]
        claimed = [m for m in kept if b"Subject: claimed" in m]
        self.assertEqual((len(queued), len(claimed)), (1, 1))
        self.assertRegex(queued[0], rb"^Return-Path: <bob@test.example>\nDelivered-To: alice-rest@test.example\n"
                                    + received(BOB_UID) + rb"Received: \(pymta \d+ invoked from network\)")
        self.assertRegex(claimed[0], rb"^Return-Path: <root@test.example>\nDelivered-To: alice-rest@test.example\n"
                                     + received(BOB_UID))

    def test_qmail_queue_from_cron(self) -> None:
        # a cron job of another user runs qmail's path with a bare environment
        self.dotqmail("rest", "./rest/\n")
        self.start()
        with open(os.path.join(self.root, "cron.msg"), "wb") as f:
            f.write(b"Subject: from cron\n\nnightly report\n")
        with open(os.path.join(self.root, "cron.msg"), "rb") as m, \
                open(os.path.join(self.root, "cron.env"), "w+b") as e:
            e.write(b"Fcron@test.example\0Talice-rest@test.example\0\0")
            e.seek(0)
            done = subprocess.run([os.path.join(self.compat, "bin", "qmail-queue")], stdin=m, stdout=e,
                                  stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                                  user=CRON_UID, group=CRON_UID, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        [mail] = self.maildir("rest", 1)
        self.assertRegex(mail, rb"^Return-Path: <cron@test.example>\nDelivered-To: alice-rest@test.example\n"
                               + received(CRON_UID) + rb"Subject: from cron\n\nnightly report\n$")

    def uid(self) -> int:
        return site.MAIL_UID


class DeliveryProgramsEndToEndTests(unittest.SynchronousTestCase):
    """maildrop and safecat as .qmail programs (no queue involved): they deliver as under qmail."""

    setUp = site.HelpersEndToEndTests.setUp
    mkdir = site.HelpersEndToEndTests.mkdir
    write = site.HelpersEndToEndTests.write
    dotqmail = site.HelpersEndToEndTests.dotqmail
    start = site.HelpersEndToEndTests.start
    send = site.HelpersEndToEndTests.send
    maildir = site.HelpersEndToEndTests.maildir
    logged = site.HelpersEndToEndTests.logged
    program = AddOnsEndToEndTests.program

    def test_safecat(self) -> None:
        self.program("safecat", "safecat")
        self.dotqmail("safe", "|safecat ./rest/tmp ./rest/new\n")
        self.start()
        self.send("alice-safe@test.example", "through safecat", sender="sender@remote.example")
        [mail] = self.maildir("rest", 1)
        self.assertRegex(mail, rb"^Received: \(pymta \d+ invoked from network\)")
        self.assertIn(b"body of through safecat", mail)
        wait_for(lambda: re.search(r": success: \S*did_0\+0\+1/", self.logged()), 30, "the program's success", self.log)

    def test_maildrop(self) -> None:
        # maildrop wants its uid in the password database (as under qmail): the user is nobody here
        if os.getuid() != 0:
            raise unittest.SkipTest("needs root: the delivery runs as nobody")
        self.program("maildrop", "maildrop")
        nobody = pwd.getpwnam("nobody")
        home = add_user(self.root, "carol", nobody.pw_uid, nobody.pw_gid)
        for box in ("sorted", "plain"):
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(home, box, sub))
        with open(os.path.join(home, "mailfilter"), "w") as f:
            f.write(f'if (/^Subject: sort me/)\n  to "{home}/sorted/"\nto "{home}/plain/"\n')
        os.chmod(os.path.join(home, "mailfilter"), 0o600)
        with open(os.path.join(home, ".qmail-md"), "w") as f:
            f.write(f"|preline maildrop {home}/mailfilter\n")
        subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", home], check=True)
        self.start()
        self.send("carol-md@test.example", "sort me", sender="sender@remote.example")
        self.send("carol-md@test.example", "plain", sender="sender@remote.example")
        for box, subject in (("sorted", b"sort me"), ("plain", b"plain")):
            new = os.path.join(home, box, "new")
            wait_for(lambda: os.listdir(new), 60, f"maildrop's delivery to {box}/", self.log)
            [name] = os.listdir(new)
            with open(os.path.join(new, name), "rb") as f:
                mail = f.read()
            self.assertIn(b"body of " + subject, mail)
            self.assertIn(b"Return-Path: <sender@remote.example>\nDelivered-To: carol-md@test.example\n", mail)
        self.assertNotIn(": deferral: ", self.logged())
