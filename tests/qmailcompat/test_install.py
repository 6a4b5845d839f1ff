"""
Tests for pymta.qmailcompat.install and C{pymta qmail-compat}: qmail's
program paths made in a target directory (a temporary one; the root-only
test at the end uses the real /var/qmail and /var/lib/qmail and puts them
back as they were), never over a real qmail, and removed exactly.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from shlex import quote as shlex_quote

from twisted.trial import unittest

from pymta.cli import qmailcompat as compat_cli
from pymta.qmailcompat import PROGRAMS
from pymta.qmailcompat.install import DEFAULT_TARGETS, MANIFEST, MARKER, CompatRefused, install, remove, script_text
from pymta.queue.envelope import parse_todo
from pymta.queue.layout import QueueLayout
from tests.qmailcompat.helpers import hold_real_paths
from tests.queue.test_store import files_under


def listing(top: str) -> list[tuple[str, str]]:
    """Every path under C{top} with what it is (a link's target), to compare before and after."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            out.append((path, os.readlink(path) if os.path.islink(path) else ("dir" if os.path.isdir(path) else "file")))
    return sorted(out)


class CompatDirectoryTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-compat-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        os.makedirs(os.path.join(self.root, "control"))
        self.target = os.path.join(self.base, "var", "qmail")

    def queue_through(self, program: str, message: bytes, envelope: bytes) -> subprocess.CompletedProcess:
        """Run C{program} as qmail's qmail_open runs qmail-queue: no arguments, message on 0, envelope on 1."""
        with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
            m.write(message)
            e.write(envelope)
            m.seek(0)
            e.seek(0)
            return subprocess.run([program], stdin=m, stdout=e, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
                                  cwd=self.target, timeout=60)

    def test_install_writes_every_program_and_the_control_link(self) -> None:
        report = install(self.root, [self.target])
        for name in PROGRAMS:
            path = os.path.join(self.target, "bin", name)
            self.assertIn(path, report.done)
            self.assertEqual(os.stat(path).st_mode & 0o7777, 0o755, name)
            with open(path) as f:
                lines = f.read().splitlines()
            self.assertEqual(lines[0], "#!/bin/sh")
            self.assertTrue(lines[1].startswith(MARKER), name)
            self.assertTrue(lines[-1].endswith(f" -P -m pymta.qmailcompat {name} \"$@\""), name)
        self.assertEqual(os.readlink(os.path.join(self.target, "control")), os.path.join(self.root, "control"))
        with open(os.path.join(self.target, MANIFEST)) as f:
            manifest = json.load(f)
        self.assertEqual(sorted(manifest["files"]), sorted(f"bin/{n}" for n in PROGRAMS))
        self.assertEqual(manifest["dirs"], [".", "bin"])
        self.assertEqual(report.kept, [])

    def test_qmail_queue_queues_as_the_caller_without_any_environment(self) -> None:
        # a cron job has neither PYMTA_ROOT nor PYMTA_PYTHON: the script knows both
        install(self.root, [self.target])
        done = self.queue_through(os.path.join(self.target, "bin", "qmail-queue"), b"Subject: cron\n\nnightly\n",
                                  b"Fcron@test.example\0Tjoe@test.example\0\0")
        self.assertEqual(done.returncode, 0, done.stderr)
        [todo] = files_under(self.layout, "todo")
        with open(todo, "rb") as f:
            envelope = parse_todo(f.read())
        self.assertEqual((envelope.sender, envelope.recipients), ("cron@test.example", ("joe@test.example",)))
        with open(self.layout.mess(int(os.path.basename(todo))), "rb") as f:
            mess = f.read()
        self.assertRegex(mess, rb"^Received: \(pymta \d+ invoked by uid %d\); \d{1,2} [A-Z][a-z]{2} \d{4} "
                               rb"\d\d:\d\d:\d\d -0000\nSubject: cron\n\nnightly\n$" % os.getuid())

    def test_root_is_quoted_and_the_callers_root_wins(self) -> None:
        odd = "/srv/it's a $HOME `root`"
        head = "".join(script_text("qmail-queue", odd).splitlines(keepends=True)[:3]) + 'printf %s "$PYMTA_ROOT"\n'
        done = subprocess.run(["/bin/sh", "-c", head], capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
        self.assertEqual(done.stdout.decode(), odd)
        done = subprocess.run(["/bin/sh", "-c", head], capture_output=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PYMTA_ROOT": "/var/other"})
        self.assertEqual(done.stdout.decode(), "/var/other")

    def test_qmail_queue_exit_codes_are_qmail_queues(self) -> None:
        install(self.root, [self.target])
        program = os.path.join(self.target, "bin", "qmail-queue")
        self.assertEqual(self.queue_through(program, b"x\n", b"Fa@b\0Tc@d\0").returncode, 54)  # no final NUL
        self.assertEqual(self.queue_through(program, b"x\n", b"Xa@b\0\0").returncode, 91)
        self.assertEqual(self.queue_through(program, b"x\n", b"F" + b"a" * 1100 + b"\0Tc@d\0\0").returncode, 11)
        self.assertEqual(files_under(self.layout, "todo"), [])

    def test_a_real_qmail_is_refused_and_nothing_is_written(self) -> None:
        bindir = os.path.join(self.target, "bin")
        os.makedirs(bindir)
        with open(os.path.join(bindir, "qmail-queue"), "wb") as f:
            f.write(b"\x7fELF qmail's own\n")
        other = os.path.join(self.base, "var", "lib", "qmail")
        before = listing(self.base)
        with self.assertRaises(CompatRefused) as caught:
            install(self.root, [other, self.target])
        self.assertIn(os.path.join(bindir, "qmail-queue"), str(caught.exception))
        self.assertIn("not pymta's", str(caught.exception))
        self.assertEqual(listing(self.base), before)
        self.assertFalse(os.path.exists(other))

    def test_other_names_already_taken_are_left_alone(self) -> None:
        # Debian's fastforward package puts its own links into /var/lib/qmail/bin
        bindir = os.path.join(self.target, "bin")
        os.makedirs(bindir)
        os.symlink("/usr/bin/fastforward", os.path.join(bindir, "fastforward"))
        with open(os.path.join(bindir, "preline"), "w") as f:
            f.write("#!/bin/sh\n# somebody's own preline\n")
        os.makedirs(os.path.join(self.target, "control"))
        before = listing(self.target)
        report = install(self.root, [self.target])
        self.assertEqual(sorted(report.kept), [f"{bindir}/preline (not pymta's)", f"{self.target}/control (not pymta's)"])
        with open(os.path.join(bindir, "preline")) as f:
            self.assertEqual(f.read(), "#!/bin/sh\n# somebody's own preline\n")
        self.assertTrue(os.path.exists(os.path.join(bindir, "qmail-queue")))
        with open(os.path.join(self.target, MANIFEST)) as f:
            self.assertEqual(json.load(f)["dirs"], [])
        # removal takes away exactly what was made
        report = remove([self.target])
        self.assertEqual(listing(self.target), before)
        self.assertNotIn(f"{bindir}/preline", report.done)

    def test_install_twice_then_remove_leaves_nothing(self) -> None:
        install(self.root, [self.target])
        install(self.root, [self.target])
        with open(os.path.join(self.target, MANIFEST)) as f:
            manifest = json.load(f)
        self.assertEqual(len(manifest["files"]), len(PROGRAMS))
        self.assertEqual(manifest["dirs"], [".", "bin"])
        remove([self.target])
        self.assertFalse(os.path.exists(self.target))
        self.assertTrue(os.path.isdir(os.path.dirname(self.target)))

    def test_remove_keeps_what_changed_since(self) -> None:
        install(self.root, [self.target])
        changed = os.path.join(self.target, "bin", "sendmail")
        with open(changed, "w") as f:
            f.write("#!/bin/sh\n# the administrator's own\n")
        report = remove([self.target])
        self.assertIn(f"{changed} (changed since pymta made it)", report.kept)
        self.assertIn(f"{self.target}/bin/ (not empty)", report.kept)
        self.assertEqual(os.listdir(os.path.join(self.target, "bin")), ["sendmail"])
        self.assertFalse(os.path.exists(os.path.join(self.target, MANIFEST)))

    def test_remove_without_manifest_touches_nothing(self) -> None:
        os.makedirs(os.path.join(self.target, "bin"))
        with open(os.path.join(self.target, "bin", "qmail-queue"), "w") as f:
            f.write("real\n")
        before = listing(self.target)
        report = remove([self.target])
        self.assertEqual(report.done, [])
        self.assertEqual(listing(self.target), before)


class HostileTargetTests(unittest.SynchronousTestCase):
    """What another account may have planted in a target: links at the temporary names, manifests, loose modes."""

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-compat-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.makedirs(os.path.join(self.root, "control"))
        self.target = os.path.join(self.base, "qmail")
        self.victim = os.path.join(self.base, "victim")
        with open(self.victim, "w") as f:
            f.write("precious\n")
        os.chmod(self.victim, 0o600)

    def victim_state(self) -> tuple[str, str]:
        with open(self.victim) as f:
            return f.read(), oct(os.stat(self.victim).st_mode & 0o777)

    def test_install_never_writes_through_a_planted_link(self) -> None:
        os.makedirs(os.path.join(self.target, "bin"))
        for name in ("qmail-queue", "sendmail"):
            os.symlink(self.victim, os.path.join(self.target, "bin", f"{name}.pymta-tmp{os.getpid()}"))
            os.symlink(self.victim, os.path.join(self.target, "bin", f".{name}.pymta-tmp{os.getpid()}"))
        os.symlink(self.victim, os.path.join(self.target, f"{MANIFEST}.pymta-tmp{os.getpid()}"))
        install(self.root, [self.target])
        self.assertEqual(self.victim_state(), ("precious\n", "0o600"))
        path = os.path.join(self.target, "bin", "qmail-queue")
        self.assertFalse(os.path.islink(path))
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o755")

    def test_a_link_where_a_program_goes_is_not_pymtas_and_is_kept(self) -> None:
        os.makedirs(os.path.join(self.target, "bin"))
        os.symlink(self.victim, os.path.join(self.target, "bin", "sendmail"))
        report = install(self.root, [self.target])
        self.assertIn(f"{self.target}/bin/sendmail (not pymta's)", report.kept)
        self.assertEqual(self.victim_state(), ("precious\n", "0o600"))

    def test_remove_ignores_manifest_entries_outside_the_target(self) -> None:
        install(self.root, [self.target])
        with open(os.path.join(self.target, MANIFEST)) as f:
            manifest = json.load(f)
        outside = os.path.relpath(self.victim, self.target)  # ../victim
        manifest["files"] += [outside, self.victim, "bin/../../victim"]
        manifest["links"][outside] = "x"
        manifest["dirs"] = [".."] + manifest["dirs"]
        with open(self.victim, "w") as f:  # it even looks like ours
            f.write(script_text("qmail-queue", self.root))
        with open(os.path.join(self.target, MANIFEST), "w") as f:
            json.dump(manifest, f)
        report = remove([self.target])
        self.assertTrue(os.path.exists(self.victim))
        for entry in (outside, self.victim, "bin/../../victim", ".."):
            self.assertIn(f"{entry!r} in {self.target}/{MANIFEST} (not a path in {self.target}: ignored)", report.kept)
        self.assertFalse(os.path.exists(self.target))
        self.assertTrue(os.path.isdir(self.base))


class RootTrustTests(unittest.SynchronousTestCase):
    """As root: a target, bin/ or interpreter that others could change is refused before anything is written."""

    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("the checks are root's: only root's cron jobs run what others planted")
        self.base = tempfile.mkdtemp(prefix="pymta-compat-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.makedirs(os.path.join(self.root, "control"))
        self.target = os.path.join(self.base, "qmail")

    def refused(self, *, python: str | None = None) -> str:
        before = listing(self.base)
        with self.assertRaises(CompatRefused) as caught:
            install(self.root, [self.target], python=python)
        self.assertEqual(listing(self.base), before)
        return str(caught.exception)

    def test_a_target_or_bin_others_can_write_is_refused(self) -> None:
        os.makedirs(os.path.join(self.target, "bin"))
        os.chmod(self.target, 0o775)
        self.assertIn(f"{self.target} is writable by others than root (mode 0775)", self.refused())
        os.chmod(self.target, 0o755)
        os.chown(os.path.join(self.target, "bin"), 1, 0)
        self.assertIn(f"{self.target}/bin is owned by uid 1, not root", self.refused())
        os.chown(os.path.join(self.target, "bin"), 0, 0)
        install(self.root, [self.target])
        self.assertTrue(os.access(os.path.join(self.target, "bin", "qmail-queue"), os.X_OK))

    def test_a_target_to_make_in_a_directory_others_can_write_is_refused(self) -> None:
        os.chmod(self.base, 0o777)
        self.target = os.path.join(self.base, "var", "qmail")
        self.assertIn(f"{self.base} is writable by others than root (mode 0777)", self.refused())

    def test_remove_leaves_a_target_others_can_write_alone(self) -> None:
        install(self.root, [self.target])
        os.chmod(self.target, 0o777)
        report = remove([self.target])
        self.assertEqual(report.done, [])
        self.assertIn(f"{self.target} ({self.target} is writable by others than root (mode 0777): left alone)",
                      report.kept)

    def test_an_interpreter_others_can_change_is_refused(self) -> None:
        python = os.path.join(self.base, "python")
        with open(python, "w") as f:
            f.write("#!/bin/sh\nexec " + shlex_quote(sys.executable) + ' "$@"\n')
        os.chmod(python, 0o775)
        self.assertIn(f"{python} is writable by others than root (mode 0775)", self.refused(python=python))
        os.chmod(python, 0o755)
        install(self.root, [self.target], python=python)
        with open(os.path.join(self.target, "bin", "qmail-queue")) as f:
            self.assertIn(python, f.read())


class CommandTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-compat-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.target = os.path.join(self.base, "qmail")
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(compat_cli.sys, "stdout", self.out)
        self.patch(compat_cli.sys, "stderr", self.err)

    def test_install_and_remove(self) -> None:
        root = os.path.join(self.base, "root")
        self.assertEqual(compat_cli.main(["install", "--root", root, "--target", self.target]), 0)
        self.assertIn(f"made {self.target}/bin/qmail-queue\n", self.out.getvalue())
        self.assertEqual(compat_cli.main(["remove", "--target", self.target]), 0)
        self.assertIn(f"removed {self.target}/bin/qmail-queue\n", self.out.getvalue())
        self.assertFalse(os.path.exists(self.target))

    def test_refusal_exits_100(self) -> None:
        os.makedirs(os.path.join(self.target, "bin"))
        with open(os.path.join(self.target, "bin", "qmail-queue"), "w") as f:
            f.write("real\n")
        self.assertEqual(compat_cli.main(["install", "--root", self.base, "--target", self.target]), 100)
        self.assertIn("is not pymta's (a qmail installation?): nothing installed", self.err.getvalue())
        self.assertEqual(os.listdir(os.path.join(self.target, "bin")), ["qmail-queue"])

    def test_usage(self) -> None:
        self.assertEqual(compat_cli.main(["frobnicate"]), 100)
        self.assertEqual(compat_cli.main([]), 100)


class RealPathsTests(unittest.SynchronousTestCase):
    """As root: the default targets themselves, put back exactly as they were."""

    def test_install_and_remove_default_targets(self) -> None:
        hold_real_paths(self)
        for target in DEFAULT_TARGETS:
            if os.path.exists(os.path.join(target, MANIFEST)) or os.path.lexists(os.path.join(target, "bin", "qmail-queue")):
                raise unittest.SkipTest(f"{target} already has a qmail-queue or a compatibility directory")
        base = tempfile.mkdtemp(prefix="pymta-compat-")
        self.addCleanup(shutil.rmtree, base, True)
        root = os.path.join(base, "root")
        QueueLayout(os.path.join(root, "queue")).create()
        before = {t: listing(t) if os.path.isdir(t) else None for t in DEFAULT_TARGETS}
        self.addCleanup(remove, list(DEFAULT_TARGETS))
        install(root, list(DEFAULT_TARGETS))
        for target in DEFAULT_TARGETS:
            self.assertTrue(os.access(os.path.join(target, "bin", "qmail-queue"), os.X_OK), target)
        remove(list(DEFAULT_TARGETS))
        for target in DEFAULT_TARGETS:
            self.assertEqual(listing(target) if os.path.isdir(target) else None, before[target], target)
