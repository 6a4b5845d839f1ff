"""
End to end: C{twistd pymta} as a real process on free loopback ports.

Mail goes in through smtplib to a local user, an extension address with a
program delivery, a virtual domain, an alias and a remote address routed by
smtproutes to an SMTP sink run by this test; the local mail is read back
over POP3 (STLS), and the qmail-send log lines are checked.
"""

from __future__ import annotations

import os
import poplib
import shutil
import smtplib
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from twisted.trial import unittest

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, log: str | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tail = ""
    if log and os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        trouble = [line for line in lines if ": failure: " in line or ": deferral: " in line or "rror" in line]
        tail = "\n--- twistd log (trouble) ---\n" + "".join(trouble[:20])
        tail += "--- twistd log (tail) ---\n" + "".join(lines[-20:])
    raise AssertionError(f"timed out waiting for {what}{tail}")


def start_listening(testcase: unittest.SynchronousTestCase, command: list[str], what: str, log: str | None,
                    ports: list[int], timeout: float = 60, **popen: Any) -> subprocess.Popen:
    """
    Run C{command} (C{popen}: more of Popen's arguments), stopped when
    C{testcase} ends; returns once every one of C{ports} on 127.0.0.1 accepts
    a connection, and fails if the process exits before (C{log}: where to look).
    """
    popen.setdefault("stdout", subprocess.DEVNULL)
    proc = subprocess.Popen(command, **popen)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    testcase.addCleanup(stop)

    def listening() -> bool:
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            testcase.assertIsNone(proc.poll(), f"{what} exited early" + (f"; see {log}" if log else ""))
            return False

    wait_for(listening, timeout, f"{what} to listen", log)
    return proc


def start_twistd(testcase: unittest.SynchronousTestCase, twistd: list[str], args: list[str], log: str,
                 ports: list[int]) -> subprocess.Popen:
    """
    Run C{twistd -n ARGS} (C{twistd}: the command that runs twistd) logging to
    C{log}, stopped when C{testcase} ends; returns once every one of C{ports}
    on 127.0.0.1 accepts a connection, and fails if twistd exits before.
    """
    command = [*twistd, "-n", "--pidfile=", f"--logfile={log}", *args]
    return start_listening(testcase, command, "twistd pymta", log, ports, cwd=SRC, stderr=subprocess.STDOUT)


def init_root(root: str, *users: str, mail_uid: int = 4242) -> None:
    """
    C{pymta init ROOT --me test.example} with these C{users} ("name:password");
    run as root, mail is delivered as C{mail_uid} (a user no test owns).
    """
    init = [root, "--me", "test.example"]
    for user in users:
        init += ["--user", user]
    if os.getuid() == 0:
        init += ["--mail-uid", f"{mail_uid}:{mail_uid}"]
    subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                   stdout=subprocess.DEVNULL)


class SinkHandler(socketserver.StreamRequestHandler):
    """A tiny SMTP server that records every message it accepts."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 sink.test ESMTP")
        envelope: dict = {"rcpt": []}
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply("250 sink.test")
            elif verb == b"MAIL":
                envelope = {"from": line.decode().strip(), "rcpt": []}
                self.reply("250 ok")
            elif verb == b"RCPT":
                envelope["rcpt"].append(line.decode().strip())
                self.reply("250 ok")
            elif verb == b"DATA":
                self.reply("354 go")
                data = []
                while True:
                    dline = self.rfile.readline()
                    if dline in (b".\r\n", b""):
                        break
                    data.append(dline)
                envelope["data"] = b"".join(data)
                self.server.messages.append(envelope)  # type: ignore[attr-defined]
                self.reply("250 accepted")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class EndToEndTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        # short (UNIX socket paths are limited to 107 bytes) and traversable by the mail uid
        base = tempfile.mkdtemp(prefix="pymta-e2e-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = os.path.join(base, "root")
        self.sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SinkHandler)
        self.sink.daemon_threads = True
        self.sink.messages = []  # type: ignore[attr-defined]
        threading.Thread(target=self.sink.serve_forever, daemon=True).start()
        self.addCleanup(self.sink.server_close)
        self.addCleanup(self.sink.shutdown)

    def pymta(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], check=True, cwd=SRC,
                       stdout=subprocess.DEVNULL)

    def write(self, path: str, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if owner:
            os.chown(path, *owner)

    def test_whole_mta(self) -> None:
        root = self.root
        init = [root, "--me", "test.example", "--user", "alice:secret"]
        owner = None
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
            owner = (4242, 4242)
        self.pymta("init", *init)
        control = os.path.join(root, "control")
        home = os.path.join(root, "home", "alice")
        with open(os.path.join(control, "rcpthosts"), "a") as f:
            f.write("virt.example\n")
        self.write(os.path.join(control, "virtualdomains"), "virt.example:alice-virt\n")
        self.write(os.path.join(control, "smtproutes"),
                   f"remote.example:127.0.0.1:{self.sink.server_address[1]}\n")
        self.write(os.path.join(home, ".qmail-virt-default"), "./Maildir/\n", owner=owner)
        self.write(os.path.join(home, ".qmail-prog"),
                   '|echo "$EXT $SENDER $(id -u)" > prog-output\n', owner=owner)

        smtp, submission, pop3 = free_port(), free_port(), free_port()
        log = os.path.join(root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", root,
                      "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                      "--submission", f"tcp:{submission}:interface=127.0.0.1",
                      "--pop3", f"tcp:{pop3}:interface=127.0.0.1"], log, [pop3, smtp])

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            for rcpt in ("alice@test.example", "alice-prog@test.example", "Info@virt.example",
                         "postmaster@test.example", "bob@remote.example"):
                client.sendmail("sender@remote.example", [rcpt],
                                f"Subject: to {rcpt}\r\n\r\nbody for {rcpt}\r\n")

        maildir_new = os.path.join(home, "Maildir", "new")
        wait_for(lambda: len(os.listdir(maildir_new)) >= 3, 60, "three local Maildir deliveries", log)
        wait_for(lambda: len(self.sink.messages) >= 1, 60, "the remote delivery", log)
        output = os.path.join(home, "prog-output")
        wait_for(lambda: os.path.exists(output) and os.path.getsize(output) > 0, 60, "program delivery", log)
        with open(output) as f:
            expected_uid = owner[0] if owner else os.getuid()
            self.assertEqual(f.read(), f"prog sender@remote.example {expected_uid}\n")
        remote = self.sink.messages[0]
        self.assertIn("<bob@remote.example>", remote["rcpt"][0])
        self.assertIn(b"body for bob@remote.example", remote["data"])
        if owner:
            for name in os.listdir(maildir_new):
                self.assertEqual(os.stat(os.path.join(maildir_new, name)).st_uid, 4242)

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.stls(context)
        pop.user("alice")
        pop.pass_("secret")
        count, _ = pop.stat()
        self.assertEqual(count, 3)
        bodies = [b"\n".join(pop.retr(i)[1]) for i in range(1, count + 1)]
        pop.quit()
        joined = b"\n".join(bodies)
        for rcpt in (b"alice@test.example", b"Info@virt.example", b"postmaster@test.example"):
            self.assertIn(b"body for " + rcpt, joined)
        self.assertIn(b"Delivered-To: alice-virt-Info@virt.example", joined)

        def logged() -> str:
            with open(log, encoding="utf-8", errors="replace") as f:
                return f.read()

        wait_for(lambda: logged().count("end msg ") >= 5, 30, "five end msg lines", log)
        text = logged()
        self.assertIn("new msg ", text)
        self.assertIn("info msg ", text)
        self.assertIn("starting delivery ", text)
        self.assertIn(": success: ", text)
        self.assertIn("to remote bob@remote.example", text)
        self.assertNotIn(": failure: ", text)
        self.assertNotIn(": deferral: ", text)
