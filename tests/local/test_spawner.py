"""
Tests for pymta.local.spawner, driving a real spawner process over its pipes
(no reactor): request framing, child reuse per uid, child quotas, bad input;
and a spawner in this process on a fake clock for idle retirement.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from twisted.trial import unittest

from pymta.local.childpool import Job
from pymta.local.deliver import LocalDelivery
from pymta.local.deliverychild import ROOT_REFUSED, become_recipient
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import LocalUser
from pymta.local.spawner import Spawner
from pymta.local.spawnrecords import DeliveryRequest, cap_output
from pymta.local.wire import RecordReader, encode_record
from tests.local.helpers import MESSAGE, chown_tree, make_home, write_file

IS_ROOT = os.getuid() == 0
UID = 4242 if IS_ROOT else os.getuid()
GID = 4242 if IS_ROOT else os.getgid()
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SpawnerProcess:
    def __init__(self, root: str, **options) -> None:
        code = (
            "import sys; from pymta.local.spawner import Spawner; "
            f"sys.exit(Spawner({root!r}, **{options!r}).run())"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": PACKAGE_PARENT},
        )
        self.reader = RecordReader()
        self.records: list[dict] = []

    def request(self, **fields) -> None:
        self.process.stdin.write(encode_record(fields))
        self.process.stdin.flush()

    def next(self, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while not self.records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no report from the spawner")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                data = os.read(self.process.stdout.fileno(), 65536)
                if not data:
                    raise AssertionError("spawner closed its output")
                self.records.extend(self.reader.feed(data))
        return self.records.pop(0)

    def close(self) -> int:
        self.process.stdin.close()
        code = self.process.wait(timeout=30)
        self.stderr = self.process.stderr.read().decode()
        self.process.stdout.close()
        self.process.stderr.close()
        return code


class SpawnerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        os.chmod(os.path.dirname(self.root), 0o711)
        for sub in ("users", "queue", "alias"):
            os.makedirs(os.path.join(self.root, sub))
        os.chmod(self.root, 0o755)
        self.home = make_home(os.path.join(self.root, "home", "joe"))
        os.chmod(os.path.join(self.root, "home"), 0o755)
        self.other_home = make_home(os.path.join(self.root, "home", "ann"))
        write_file(
            os.path.join(self.root, "users", "assign"),
            f"=joe:joe:{UID}:{GID}:{self.home}:::\n+joe-:joe:{UID}:{GID}:{self.home}:-::\n"
            f"+ann-:ann:{UID + 1}:{GID + 1}:{self.other_home}:-::\n.\n",
        )
        write_file(os.path.join(self.home, ".qmail-pid"), "|echo $PPID; id -u\n", 0o600)
        write_file(os.path.join(self.other_home, ".qmail-pid"), "|echo $PPID; id -u\n", 0o600)
        if IS_ROOT:
            chown_tree(self.home, UID, GID)
            chown_tree(self.other_home, UID + 1, GID + 1)
            chown_tree(os.path.join(self.root, "alias"), UID, GID)
        self.message = write_file(os.path.join(self.root, "queue", "1"), MESSAGE, 0o600)

    def spawner(self, **options) -> SpawnerProcess:
        spawner = SpawnerProcess(self.root, **options)
        self.addCleanup(lambda: spawner.process.poll() is None and spawner.close())
        hello = spawner.next()
        self.assertEqual((hello["hello"], hello["uid"]), (1, os.getuid()))
        return spawner

    def deliver(self, spawner: SpawnerProcess, slot: int, recipient: str, message: str | None = None) -> None:
        spawner.request(slot=slot, message=message or self.message, sender="a@b", recipient=recipient,
                        defaultdelivery="./Maildir/\n")

    def test_child_reused_for_same_uid_only(self) -> None:
        spawner = self.spawner()
        self.deliver(spawner, 1, "joe-pid@x")
        first = spawner.next()
        self.deliver(spawner, 2, "joe-pid@x")
        second = spawner.next()
        self.assertEqual((first["slot"], first["status"], second["slot"], second["status"]), (1, "K", 2, "K"))
        self.assertEqual(first["output"], second["output"])  # same delivery child, same uid
        self.assertEqual(first["output"].split()[1], str(UID))
        self.assertEqual(first["uid"], UID)
        if IS_ROOT:
            self.deliver(spawner, 3, "ann-pid@x")
            third = spawner.next()
            self.assertEqual(third["status"], "K")
            ppid, uid = third["output"].split()
            self.assertEqual(uid, str(UID + 1))
            self.assertNotEqual(ppid, first["output"].split()[0])
        self.assertEqual(spawner.close(), 0)

    def test_child_retired_after_its_quota(self) -> None:
        spawner = self.spawner(child_deliveries=2)
        pids = []
        for slot in range(1, 5):
            self.deliver(spawner, slot, "joe-pid@x")
            pids.append(spawner.next()["output"].split()[0])
        self.assertEqual((pids[0] == pids[1], pids[1] == pids[2], pids[2] == pids[3]), (True, False, True))
        spawner.close()

    def test_many_in_flight_and_end_of_input_drains(self) -> None:
        write_file(os.path.join(self.home, ".qmail-slow"), "|sleep 0.2\n./Maildir/\n", 0o600)
        if IS_ROOT:
            os.chown(os.path.join(self.home, ".qmail-slow"), UID, GID)
        spawner = self.spawner(max_children=3)
        for slot in range(1, 8):
            self.deliver(spawner, slot, "joe-slow@x")
        spawner.process.stdin.close()
        reports = [spawner.next() for _ in range(7)]
        self.assertEqual(sorted(r["slot"] for r in reports), list(range(1, 8)))
        self.assertEqual({r["status"] for r in reports}, {"K"})
        self.assertEqual(spawner.process.wait(timeout=30), 0)
        self.assertEqual(len(os.listdir(os.path.join(self.home, "Maildir", "new"))), 7)

    def test_bad_requests(self) -> None:
        spawner = self.spawner()
        spawner.request(slot=1, message=self.message, sender="a@b", recipient="joe@x")  # no defaultdelivery
        spawner.request(slot=2, message=self.message, sender="a@b", recipient="jo\0e@x", defaultdelivery="")
        spawner.request(slot="x", message=self.message)
        self.deliver(spawner, 3, "joe@x", message=os.path.join(self.root, "nonexistent"))
        reports = [spawner.next() for _ in range(3)]
        self.assertEqual(
            [(r["slot"], r["status"], r["output"]) for r in reports],
            [
                (1, "D", "Internal error: request has no defaultdelivery. (#5.3.0)\n"),
                (2, "D", "Sorry, address contains a NUL byte. (#5.1.3)\n"),
                (3, "Z", "Unable to open message: No such file or directory. (#4.3.0)\n"),
            ],
        )
        self.assertEqual(spawner.close(), 0)
        self.assertIn("request without a slot number ignored", spawner.stderr)

    def test_garbage_stops_accepting(self) -> None:
        spawner = self.spawner()
        spawner.process.stdin.write(b"this is not a netstring")
        spawner.process.stdin.flush()
        self.assertEqual(spawner.process.wait(timeout=30), 0)
        spawner.close()
        self.assertIn("protocol error from parent", spawner.stderr)

    def test_broken_assign_defers(self) -> None:
        write_file(os.path.join(self.root, "users", "assign"), "=joe:joe:notanumber:1:/h:::\n.\n")
        spawner = self.spawner()
        self.deliver(spawner, 1, "joe@x")
        report = spawner.next()
        self.assertEqual(report["status"], "Z")
        self.assertIn("Trouble reading users/assign", report["output"])
        spawner.close()
        self.assertIn("run pymta newu", spawner.stderr)


class HelperTests(unittest.SynchronousTestCase):
    def test_cap_output(self) -> None:
        self.assertEqual(cap_output("short"), "short")
        capped = cap_output("é" * 4000)
        self.assertTrue(capped.endswith("\nError report too long, sorry.\n"))
        self.assertLessEqual(len(capped.encode()), 3000)

    def test_uid_zero_refused(self) -> None:
        e = self.assertRaises(DeliveryFailure, become_recipient, 0, 0)
        self.assertEqual((e.status, e.text), ("Z", ROOT_REFUSED))

    def test_privileges_dropped_in_order(self) -> None:
        if not IS_ROOT:
            raise unittest.SkipTest("needs root")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                become_recipient(4242, 4343)
                os.write(w, repr((os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())).encode())
                try:
                    become_recipient(4244, 4244)
                except DeliveryFailure as failure:
                    os.write(w, b"|" + failure.text.encode())
            finally:
                os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        ids, refusal = data.decode().split("|")
        self.assertEqual(ids, repr((4242, 4242, 4343, 4343, [4343])))
        self.assertEqual(refusal, "Not running as root, cannot deliver as uid 4244. (#4.3.0)")


class MessageFileLockTests(unittest.TestCase):
    """The spawner reads a queued message only under a shared lock, never an orphan's queued job."""

    setUp = SpawnerTests.setUp
    spawner = SpawnerTests.spawner
    deliver = SpawnerTests.deliver

    def test_message_being_written_is_not_delivered(self) -> None:
        import fcntl

        fd = os.open(self.message, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the queue writer holds a message file until its commit
        spawner = self.spawner()
        self.deliver(spawner, 1, "joe@x")
        report = spawner.next()
        self.assertEqual(report["status"], "Z")
        self.assertIn("busy", report["output"])
        fcntl.flock(fd, fcntl.LOCK_UN)
        self.deliver(spawner, 2, "joe@x")
        self.assertEqual(spawner.next()["status"], "K")
        spawner.close()

    def test_orphaned_spawner_starts_no_queued_delivery(self) -> None:
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        self.addCleanup(os.close, write_end)
        spawner = Spawner(self.root, infd=-1, outfd=write_end)
        spawner.eof = True
        spawner.parent = -1  # as after the queue manager died and this process was handed to init
        user = LocalUser("joe", UID, GID, self.home, "", "", "assign")
        spawner.waiting.append(Job(7, self.message, LocalDelivery("a@b", "joe", "x", user, "./Maildir/\n")))
        spawner._dispatch()
        self.assertEqual(list(spawner.waiting), [])
        self.assertEqual(spawner.pool.children, {})
        [report] = RecordReader().feed(os.read(read_end, 65536))
        self.assertEqual((report["slot"], report["status"]), (7, "Z"))
        self.assertEqual(os.listdir(os.path.join(self.home, "Maildir", "new")), [])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class QuietSpawner(Spawner):
    """Its warnings kept for the test instead of written on this process's stderr."""

    def warn(self, text: str) -> None:
        self.warnings = getattr(self, "warnings", []) + [text]


class IdleRetirementTests(unittest.SynchronousTestCase):
    """A spawner in this process, its time from a fake clock: idle children retire when the clock says so."""

    setUp = SpawnerTests.setUp

    def start_spawner(self, **options) -> None:
        self.clock = FakeClock()
        self.requests_r, self.requests_w = os.pipe()
        self.reports_r, self.reports_w = os.pipe()
        self.spawner = QuietSpawner(self.root, self.requests_r, self.reports_w, clock=self.clock, **options)
        # a delivery child forked from this process must not keep the test's ends either
        self.spawner.pool.close_in_child += (self.requests_w, self.reports_r)
        self.addCleanup(self.stop_spawner)
        self.reader = RecordReader()
        self.spawner.start()
        [hello] = self.reports()
        self.assertEqual(hello["uid"], os.getuid())

    def stop_spawner(self) -> None:
        if self.requests_w is not None:
            os.close(self.requests_w)
            self.requests_w = None
            deadline = time.monotonic() + 20
            while not self.spawner.finished() and time.monotonic() < deadline:
                self.spawner.step(wait=0.05)
            self.assertEqual(self.spawner.close(), 0)
        for fd in (self.requests_r, self.reports_r, self.reports_w):
            os.close(fd)

    def reports(self, count: int = 1) -> list[dict]:
        """Turn the spawner until C{count} records came out (children are real processes: bounded by 20 s)."""
        records: list[dict] = []
        deadline = time.monotonic() + 20
        while len(records) < count:
            self.assertLess(time.monotonic(), deadline, "no report from the spawner")
            if select.select([self.reports_r], [], [], 0)[0]:
                records.extend(self.reader.feed(os.read(self.reports_r, 65536)))
            else:
                self.spawner.step(wait=0.05)
        return records

    def deliver(self, slot: int) -> str:
        """The delivery child's pid (the program's parent) for one delivery to joe-pid."""
        os.write(self.requests_w, DeliveryRequest(slot, self.message, "a@b", "joe-pid@x", "./Maildir/\n").encode())
        [report] = self.reports()
        self.assertEqual((report["slot"], report["status"]), (slot, "K"))
        return report["output"].split()[0]

    def test_idle_child_retired_by_the_clock(self) -> None:
        self.start_spawner(child_idle=2.0)
        first = self.deliver(1)
        self.clock.now += 1.9
        self.spawner.step(wait=0)
        self.assertEqual(self.deliver(2), first)  # idle 1.9 s of 2: still there
        self.clock.now += 2.0
        self.spawner.step(wait=0)
        self.assertEqual(self.spawner.pool.children, {})  # retired
        deadline = time.monotonic() + 20
        while self.spawner.pool.unreaped:
            self.assertLess(time.monotonic(), deadline, "retired child not reaped")
            self.spawner.step(wait=0.05)
        self.assertFalse(os.path.exists(f"/proc/{first}"))  # exited and reaped
        self.assertNotEqual(self.deliver(3), first)

    def test_pool_timeout_follows_the_clock(self) -> None:
        self.start_spawner(child_idle=2.0)
        self.assertIsNone(self.spawner.pool.timeout())  # no child: nothing to wake up for
        self.deliver(1)
        self.assertEqual(self.spawner.pool.timeout(), 2.0)
        self.clock.now += 1.5
        self.assertEqual(self.spawner.pool.timeout(), 0.5)
