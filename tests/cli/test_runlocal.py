"""
pymta.cli.runlocal (`make run`): where the embedded root goes when the mail
uid could not reach it; as root, `make run` in a fresh clone inside a 0700
directory, delivering a message sent over SMTP and reading it back over
POP3; and the README's quick start, run as printed against `make run` in a
fresh clone, which is also what `make run` prints.
"""

from __future__ import annotations

import io
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.runlocal import RootLocationError, hints, initialise, quick_start_lines, reachable_root
from pymta.fsaccess import Account
from tests.waiting import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = Account(65534, 65534)
#: how the README and make run's hints name the password file and the Python (relative to the checkout)
PASSWORD_FILE = "var/pymta/run/first-password"
VENV_PYTHON = ".venv/bin/python"


def readme_blocks() -> list[list[str]]:
    """The lines of each C{sh} block of README.md, in order."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return [block.splitlines() for block in re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)]


def readme_quick_start() -> list[str]:
    """The README's quick start: the block after the one with C{make run}."""
    blocks = readme_blocks()
    first = next(i for i, block in enumerate(blocks) if any(line.startswith("make run") for line in block))
    return blocks[first + 1]


def makefile_port(variable: str) -> int:
    """The port of an endpoint default in the Makefile (C{SMTP ?= tcp:2525:...})."""
    with open(os.path.join(REPO, "Makefile")) as f:
        match = re.search(rf"^{variable} \?= tcp:(\d+):", f.read(), re.M)
    assert match is not None, variable
    return int(match.group(1))


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def daemon_pid(marker: str) -> int:
    """The process whose command line has C{marker} and that runs as uid 65534."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace").split("\0")
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        if marker in cmdline and uid == 65534:
            return int(name)
    raise AssertionError(f"no process with {marker}")


def held_directories(pid: int) -> set[str]:
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if os.path.isdir(target):
            paths.add(target)
    return paths


def clone_checkout(test: SynchronousTestCase, base: str) -> str:
    """
    C{git clone} of this checkout into C{base}/pymta, its working tree's
    changes copied over, C{.venv} a link to the running virtual environment
    (no pip install; make is told not to rebuild it).  Skips C{test} when
    that cannot be done here.
    """
    if sys.prefix == sys.base_prefix:
        raise test.skipTest("needs to run in a virtual environment (it is reused)")
    for program in ("git", "make"):
        if shutil.which(program) is None:
            raise test.skipTest(f"needs {program}")
    if subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        raise test.skipTest("not a git checkout")
    clone = os.path.join(base, "pymta")
    subprocess.run(["git", "clone", "-q", REPO, clone], check=True, timeout=120)
    changed = subprocess.run(
        ["git", "-C", REPO, "ls-files", "--modified", "--others", "--exclude-standard", "-z"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, changed):  # test the working tree, not only what is committed
        source = os.path.join(REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(clone, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(clone, name))
    os.symlink(sys.prefix, os.path.join(clone, ".venv"))
    return clone


class MakeRun:
    """
    C{make run} in C{clone} on these loopback ports (PYTHONPATH the clone, so
    the code imported is the clone's), in a session of its own, its output
    teed into C{base}/make-run.txt; the test's cleanup stops it.
    """

    def __init__(self, test: SynchronousTestCase, clone: str, base: str, smtp: int, submission: int, pop3: int) -> None:
        env = dict(os.environ, PYTHONPATH=clone)
        for name in ("SUDO_UID", "SUDO_GID", "PYMTA_ROOT"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            ["make", "-o", ".venv/bin/pymta", "run",
             f"SMTP=tcp:{smtp}:interface=127.0.0.1", f"SUBMISSION=tcp:{submission}:interface=127.0.0.1",
             f"POP3=tcp:{pop3}:interface=127.0.0.1"],
            cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output = os.path.join(base, "make-run.txt")
        test.addCleanup(self.stop)
        reader = subprocess.Popen(["tee", self.output], stdin=self.process.stdout, stdout=subprocess.DEVNULL)
        test.addCleanup(reader.wait, 30)

    def stop(self) -> None:
        """Ctrl-C, as a person stops it (SIGKILL after 30 seconds)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def text(self) -> str:
        """Its output so far."""
        try:
            with open(self.output, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None


class ReachableRootTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="pymta-runlocal-"))
        self.addCleanup(shutil.rmtree, self.base, True)
        self.relocated = os.path.join(self.base, "relocated")

    def test_not_root_nothing_to_check(self) -> None:
        requested = os.path.join(self.base, "var", "pymta")
        self.assertEqual(reachable_root(requested, None, self.relocated), (requested, None))

    def test_reachable_stays(self) -> None:
        os.chmod(self.base, 0o755)
        requested = os.path.join(self.base, "var", "pymta")
        self.assertEqual(reachable_root(requested, NOBODY, self.relocated), (requested, None))
        self.assertFalse(os.path.exists(self.relocated))

    def test_unreachable_requested_root(self) -> None:
        os.chmod(self.base, 0o711)
        private = os.path.join(self.base, "private")
        os.mkdir(private, 0o700)
        requested = os.path.join(private, "clone", "var", "pymta")
        root, note = reachable_root(requested, NOBODY, self.relocated)
        self.assertTrue(root.startswith(self.relocated + "/"))
        self.assertEqual(os.readlink(requested), root)
        assert note is not None
        self.assertIn(f"{private} (mode 0700, owner {os.getuid()}:{os.getgid()}) does not let uid 65534", note)
        # the next run finds it through the link
        self.assertEqual(reachable_root(requested, NOBODY, self.relocated), (root, None))

    def test_existing_unreachable_root_is_refused(self) -> None:
        os.chmod(self.base, 0o711)
        private = os.path.join(self.base, "private")
        requested = os.path.join(private, "var", "pymta")
        os.makedirs(requested)
        os.chmod(private, 0o700)
        with self.assertRaises(RootLocationError) as cm:
            reachable_root(requested, NOBODY, self.relocated)
        self.assertIn(f"remove it (rm -rf {requested})", str(cm.exception))
        self.assertFalse(os.path.exists(self.relocated))


class MakeRunFromPrivateCloneTests(SynchronousTestCase):
    """
    As root: `git clone` of this checkout into a fresh 0700 directory, its
    working tree's changes copied over, `.venv` a link to the running
    virtual environment (no pip install; make is told not to rebuild it),
    PYTHONPATH the clone so the code imported is the clone's.  `make run`
    on free loopback ports; a message over SMTP lands in the Maildir and
    comes back over POP3.
    """

    timeout = 180

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        self.base = tempfile.mkdtemp(prefix="pymta-makerun-")  # 0700: only root may enter
        self.addCleanup(shutil.rmtree, self.base, True)
        self.clone = clone_checkout(self, self.base)

    def test_make_run_delivers(self) -> None:
        smtp, submission, pop3 = free_ports(3)
        make = MakeRun(self, self.clone, self.base, smtp, submission, pop3)
        text = make.text
        started = wait_until(lambda: "dropped root" in text() or not make.running(), 90)
        self.assertTrue(started and make.running(), text())
        match = re.search(r"pymta is starting on (\S+)", text())
        assert match is not None, text()
        root = match.group(1)
        if root.startswith("/var/lib/pymta-make-run/"):
            self.addCleanup(shutil.rmtree, root, True)
        self.assertEqual(os.path.realpath(os.path.join(self.clone, "var", "pymta")), root)
        self.assertIn(f"{self.base} (mode 0700, owner 0:0) does not let uid 65534 gid 65534", text())
        self.assertIn("dropped root: running as uid 65534 gid 65534", text())
        # the daemon holds the directories of its code open (pymta.heldimports)
        daemon = daemon_pid(f"tcp:{smtp}:interface=127.0.0.1")
        held = held_directories(daemon)
        self.assertIn(self.clone, held)
        self.assertTrue(any(path.startswith(os.path.join(self.clone, ".venv")) or path.startswith(sys.prefix) for path in held), held)

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            self.assertEqual(client.sendmail("me@localhost", ["admin@localhost"], b"Subject: private clone\r\n\r\nhello\r\n"), {})
        new = os.path.join(root, "home", "admin", "Maildir", "new")
        self.assertTrue(wait_until(lambda: os.listdir(new), 30), text())

        with open(os.path.join(root, "run", "first-password")) as f:
            user, _, password = f.read().strip().partition(":")
        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.stls(ssl._create_unverified_context())
        pop.user(user)
        pop.pass_(password)
        self.assertEqual(pop.retr(1)[1][-1], b"hello")
        pop.quit()

        make.stop()
        self.assertNotIn("Traceback", text())
        self.assertNotIn("PermissionError", text())


class InitialiseTests(SynchronousTestCase):
    def test_password_file_belongs_to_the_sudo_user(self) -> None:
        """`sudo make run`: the user reads first-password from another terminal, as the README does."""
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        os.chmod(base, 0o755)
        os.chmod(os.path.dirname(base), 0o755)
        self.patch(os, "environ", dict(os.environ, SUDO_UID="4321", SUDO_GID="4322"))
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        root = os.path.join(base, "root")
        password = initialise(root)
        path = os.path.join(root, "run", "first-password")
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (4321, 4322, 0o600))
        with open(path) as f:
            user, _, written = f.read().strip().partition(":")
        self.assertEqual(written, password)
        self.assertEqual(os.stat(os.path.join(root, "queue")).st_uid, 4321)
        self.assertIn(f"made the root {root}: me = localhost, mailbox user {user}\n", out.getvalue())
        self.assertIsNone(initialise(root))  # made once


class QuickStartTextTests(SynchronousTestCase):
    """The README's quick start is what make run prints for the Makefile's endpoints."""

    def test_readme_is_make_runs_quick_start(self) -> None:
        smtp, pop3 = makefile_port("SMTP"), makefile_port("POP3")
        lines = readme_quick_start()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines, quick_start_lines(PASSWORD_FILE, ("127.0.0.1", str(smtp)), ("127.0.0.1", str(pop3)), VENV_PYTHON))

    def test_install_guide_shows_the_same_lines(self) -> None:
        with open(os.path.join(REPO, "docs", "install.md"), encoding="utf-8") as f:
            blocks = [b.splitlines() for b in re.findall(r"^```sh\n(.*?)^```$", f.read(), re.M | re.S)]
        self.assertIn(readme_quick_start(), blocks)

    def test_hints_print_the_quick_start(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "run"))
        with open(os.path.join(root, "run", "first-password"), "w") as f:
            f.write("alice:pw\n")
        text = hints(root, "var/pymta", f"tcp:{makefile_port('SMTP')}:interface=127.0.0.1",
                     f"tcp:{makefile_port('POP3')}", VENV_PYTHON)
        self.assertIn("mailbox user: alice   POP3 password: pw   (kept in var/pymta/run/first-password)", text)
        for line in readme_quick_start():
            self.assertIn(f"\n    {line}\n", text)
        self.assertIn("the queue: .venv/bin/pymta qread --root var/pymta", text)

    def test_endpoint_addresses(self) -> None:
        lines = quick_start_lines("p", ("::1", "25"), ("127.0.0.2", "110"), "py")
        self.assertIn("smtplib.SMTP('::1', 25)", lines[1])
        self.assertIn("poplib.POP3('127.0.0.2', 110)", lines[2])
        root = self.mktemp()
        text = hints(root, root, "tcp6:2525:interface=\\:\\:1", "tcp:1110:interface=0.0.0.0", "py")
        self.assertIn("smtplib.SMTP('::1', 2525)", text)
        self.assertIn("poplib.POP3('127.0.0.1', 1110)", text)


class ReadmeQuickStartTests(SynchronousTestCase):
    """
    From a fresh clone (as in L{MakeRunFromPrivateCloneTests}, in a directory
    the mail uid can reach): `make run` on free loopback ports, then the
    README's quick start exactly as printed there (the default ports
    replaced by the free ones, which make run prints instead): the message
    comes back over POP3, the log and the queue show no bounce.
    """

    timeout = 180

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-readme-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.clone = clone_checkout(self, self.base)

    def test_quick_start_as_printed(self) -> None:
        smtp, submission, pop3 = free_ports(3)
        readme_smtp, readme_pop3 = makefile_port("SMTP"), makefile_port("POP3")
        lines = []
        for line in readme_quick_start():
            self.assertLessEqual(line.count(str(readme_smtp)) + line.count(str(readme_pop3)), 1, line)
            lines.append(line.replace(str(readme_smtp), str(smtp)).replace(str(readme_pop3), str(pop3)))
        make = MakeRun(self, self.clone, self.base, smtp, submission, pop3)

        def listening(port: int) -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        started = wait_until(lambda: (listening(smtp) and listening(pop3)) or not make.running(), 90)
        self.assertTrue(started and make.running(), make.text())
        for line in lines:  # what make run printed is what the README says
            self.assertIn(f"\n    {line}\n", make.text())

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        maildirs = os.path.join(self.clone, "var", "pymta", "home", "*", "Maildir", "new")
        # a person takes longer between two lines than a local delivery: wait as long as it may take
        delivered = f"for i in $(seq 300); do ls {maildirs} | grep -q . && break; sleep 0.1; done"
        script = "\n".join([lines[0], lines[1], delivered, lines[2]]) + "\n"
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.clone, env=env,
                                capture_output=True, timeout=90)
        output = result.stdout.decode(errors="replace")
        self.assertEqual(result.returncode, 0, output + result.stderr.decode(errors="replace") + make.text())
        self.assertIn("\nSubject: hi\n\nhello from pymta\n", output)
        self.assertRegex(output, r"^Return-Path: <[^@>]+@localhost>\nDelivered-To: [^@\n]+@localhost\n")

        self.assertTrue(wait_until(lambda: "end msg" in make.text(), 30), make.text())
        qread = subprocess.run([".venv/bin/pymta", "qread", "--root", "var/pymta"], cwd=self.clone, env=env,
                               capture_output=True, timeout=60)
        self.assertEqual((qread.returncode, qread.stdout, qread.stderr), (0, b"", b""))
        queue = os.path.join(self.clone, "var", "pymta", "queue")
        self.assertEqual([f for sub in ("mess", "bounce", "todo") for _, _, fs in os.walk(os.path.join(queue, sub))
                          for f in fs], [])
        make.stop()
        log = make.text()
        self.assertEqual(log.count("new msg "), 1, log)
        for bad in ("bounce msg", "triple bounce", "delivery 1: failure", "Traceback"):
            self.assertNotIn(bad, log)


class FirstPasswordLinksTests(SynchronousTestCase):
    """run/ belongs to the mail account: first-password is read and written without following links."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "run"))
        self.path = os.path.join(self.root, "run", "first-password")
        self.secret = os.path.abspath(self.mktemp())
        with open(self.secret, "w") as f:
            f.write("root:$6$hash:19000:0:99999:7:::\n")

    def shown(self) -> str:
        return hints(self.root, self.root, "tcp:2525", "tcp:1110", "py")

    def test_symlink_is_not_read(self) -> None:
        os.symlink(self.secret, self.path)
        text = self.shown()
        self.assertNotIn("hash", text)
        self.assertIn("mailbox user: ?", text)

    def test_hard_link_is_not_read(self) -> None:
        os.link(self.secret, self.path)
        self.assertNotIn("hash", self.shown())

    def test_fifo_is_not_waited_for(self) -> None:
        os.mkfifo(self.path)
        self.assertIn("mailbox user: ?", self.shown())

    def test_regular_file_is_read(self) -> None:
        with open(self.path, "w") as f:
            f.write("alice:pw\n")
        self.assertIn("mailbox user: alice   POP3 password: pw", self.shown())

    def test_write_refuses_a_symlink_and_leaves_its_target(self) -> None:
        from pymta.cli.runlocal import _write_first_password
        from pymta.ownfile import UnsafeFile

        os.symlink(self.secret, self.path)
        self.assertRaises(UnsafeFile, _write_first_password, self.path, "alice:pw\n", None)
        os.unlink(self.path)
        os.link(self.secret, self.path)
        self.assertRaises(UnsafeFile, _write_first_password, self.path, "alice:pw\n", None)
        with open(self.secret) as f:
            self.assertEqual(f.read(), "root:$6$hash:19000:0:99999:7:::\n")

    def test_write_replaces_a_stale_regular_file(self) -> None:
        from pymta.cli.runlocal import _write_first_password

        with open(self.path, "w") as f:
            f.write("old:a-much-longer-old-password\n")
        _write_first_password(self.path, "alice:pw\n", None)
        with open(self.path) as f:
            self.assertEqual(f.read(), "alice:pw\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
