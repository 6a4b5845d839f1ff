"""
Crash safety of the queue writer: a writer SIGKILLed at every step of the
write sequence - qmail's plain order and the early path, which makes the
envelope and the mess/N entry durable before the data - leaves the whole
message or nothing visible, and the cleaner removes what is left; a full
disk acknowledges nothing it could not store.
"""

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from twisted.trial import unittest

from pymta.queue.cleaner import clean_queue
from pymta.queue.envelope import parse_todo
from pymta.queue.errors import QueueFailure
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.store import EARLY_STEPS, PAUSE_ENV, STEPS, Queue
from tests.queue.test_store import files_under

BODY = b"Subject: crash test\n\n" + b"payload line\n" * 2000

WRITER = """
import sys
from pymta.queue.disk import QueueDisk
from pymta.queue.layout import QueueLayout
from pymta.queue.store import Queue
m = Queue(QueueDisk.plain(QueueLayout(sys.argv[1]))).begin("by uid 0", 0, 1)
m.write(sys.stdin.buffer.read())
r = m.commit("sender@example.org", ["one@example.net", "two@example.com"])
print(r.message_id, flush=True)
"""

#: the early path, as pymta-send's sink takes it (the entry first, the batch commit after the data)
EARLY_WRITER = """
import sys
from pymta.queue.disk import QueueDisk
from pymta.queue.groupcommit import commit_prepared
from pymta.queue.layout import QueueLayout
from pymta.queue.store import Queue
envelope = ("sender@example.org", ["one@example.net", "two@example.com"])
m = Queue(QueueDisk.plain(QueueLayout(sys.argv[1]))).begin("by uid 0", 0, 1)
m.start_entry(*envelope)
m.write(sys.stdin.buffer.read())
m.stage(*envelope)
[r] = commit_prepared([m])
print(r.message_id, flush=True)
"""

#: the first step at which the message is committed
COMMITTED_FROM = STEPS.index("fsync_todo")


class CrashTests(unittest.SynchronousTestCase):
    def kill_at(self, step: str, writer: str = WRITER) -> QueueLayout:
        layout = QueueLayout(os.path.join(self.mktemp(), "queue"))
        layout.create()
        env = dict(os.environ, **{PAUSE_ENV: step})
        proc = subprocess.Popen(
            [sys.executable, "-c", writer, layout.queuedir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        proc.stdin.write(BODY)
        proc.stdin.close()
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        line = proc.stderr.readline() if ready else b""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        self.assertEqual(line, f"paused {step}\n".encode(), f"writer did not pause at {step}")
        return layout

    def check_after_kill(self, step: str, writer: str = WRITER) -> None:
        layout = self.kill_at(step, writer)
        todo = files_under(layout, "todo")
        if writer is EARLY_WRITER and step in EARLY_STEPS:
            # the entry is there (made durable, or about to be) before any data: nothing visible
            self.assertEqual(len(files_under(layout, "intd")), 1, step)
            self.assertEqual(len(files_under(layout, "mess")), 1, step)
        if STEPS.index(step) >= COMMITTED_FROM:
            self.assertEqual(len(todo), 1, step)
            mid = int(os.path.basename(todo[0]))
            with open(todo[0], "rb") as f:
                env = parse_todo(f.read())
            self.assertEqual(env.recipients, ("one@example.net", "two@example.com"))
            with open(layout.mess(mid), "rb") as f:
                self.assertTrue(f.read().endswith(b"\n" + BODY), step)
        else:
            self.assertEqual(todo, [], step)
        removed = clean_queue(layout, now=time.time() + 60)
        self.assertEqual(files_under(layout, "pid"), [], step)
        if todo:
            self.assertEqual(removed, [], step)
            self.assertEqual(len(files_under(layout, "mess")), 1, step)
        else:
            self.assertEqual(files_under(layout, "mess"), [], step)
            self.assertEqual(files_under(layout, "intd"), [], step)

    def test_every_step_is_covered(self) -> None:
        tested = [name[len("test_kill_at_") :] for name in dir(self) if name.startswith("test_kill_at_")]
        self.assertEqual(sorted(tested), sorted(set(STEPS) - set(EARLY_STEPS)))
        early = [name[len("test_kill_early_at_") :] for name in dir(self) if name.startswith("test_kill_early_at_")]
        self.assertEqual(sorted(early), sorted(STEPS))


def _make(step, writer):
    return lambda self: self.check_after_kill(step, writer)


for _step in STEPS:
    if _step not in EARLY_STEPS:
        setattr(CrashTests, f"test_kill_at_{_step}", _make(_step, WRITER))
    setattr(CrashTests, f"test_kill_early_at_{_step}", _make(_step, EARLY_WRITER))


class FullDiskTests(unittest.SynchronousTestCase):
    """On a 1 MB tmpfs (root only): nothing acknowledged is lost, nothing half visible."""

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise unittest.SkipTest("mounting a tmpfs needs root")
        self.mountpoint = tempfile.mkdtemp(prefix="pymta-full-")
        self.addCleanup(shutil.rmtree, self.mountpoint, True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.mountpoint], capture_output=True, timeout=30
        )
        if result.returncode != 0:
            raise unittest.SkipTest(f"cannot mount a tmpfs: {result.stderr.decode(errors='replace').strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", self.mountpoint], capture_output=True, timeout=30)
        self.layout = QueueLayout(os.path.join(self.mountpoint, "queue"))
        self.layout.create()

    def test_fill_the_disk(self) -> None:
        queue = Queue(QueueDisk.plain(self.layout))
        body = b"x" * 99 + b"\n"
        acknowledged = []
        failures = []
        for i in range(60):  # 60 x 30 KB > 1 MB
            try:
                m = queue.begin("by uid 0", 0, 1)
                for _ in range(300):
                    m.write(body)
                acknowledged.append(m.commit("a@b", ["c@d"]).message_id)
            except QueueFailure as e:
                failures.append(e)
        self.assertTrue(failures, "the disk never filled up")
        self.assertTrue(acknowledged, "nothing fitted at all")
        for e in failures:
            self.assertFalse(e.permanent)
            self.assertIn(e.text, ("qq write error or disk full (#4.3.0)", "qq trouble creating files in queue (#4.3.0)"))
        self.assertEqual(sorted(int(os.path.basename(p)) for p in files_under(self.layout, "todo")), sorted(acknowledged))
        for mid in acknowledged:
            with open(self.layout.mess(mid), "rb") as f:
                self.assertTrue(f.read().endswith(body * 300))
        # refused messages left nothing behind
        self.assertEqual(len(files_under(self.layout, "mess")), len(acknowledged))
        self.assertEqual(len(files_under(self.layout, "intd")), len(acknowledged))
        self.assertEqual(files_under(self.layout, "pid"), [])
        self.assertEqual(clean_queue(self.layout, now=time.time() + 60), [])

    def test_fill_the_disk_through_the_inject_server(self) -> None:
        from twisted.internet.testing import StringTransport

        from pymta.interfaces import QueueReceipt, QueueRefused
        from pymta.queue.framing import encode_envelope, netstring
        from pymta.queue.injectserver import InjectServerFactory
        from pymta.queue.sink import QueueSink
        from tests.queue.test_inject import read_replies
        from tests.queue.test_store import ImmediateReactor, ImmediateThreadPool

        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), ImmediateThreadPool())
        factory = InjectServerFactory(sink, credentials=lambda t: (1, 1000, 1000))
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.addCleanup(proto.setTimeout, None)
        chunk = netstring(b"y" * 9999 + b"\n")
        for _ in range(40):  # 40 x 50 KB > 1 MB
            proto.dataReceived(encode_envelope("", "a@b", ["c@d"]) + chunk * 5 + b"0:,")
        replies = read_replies(transport.value())
        self.assertEqual(len(replies), 40)
        acknowledged = [r.message_id for r in replies if isinstance(r, QueueReceipt)]
        refused = [r for r in replies if isinstance(r, QueueRefused)]
        self.assertTrue(acknowledged)
        self.assertTrue(refused)
        self.assertTrue(all(not r.permanent for r in refused))
        self.assertEqual(sorted(int(os.path.basename(p)) for p in files_under(self.layout, "todo")), sorted(acknowledged))
        self.assertEqual(len(files_under(self.layout, "mess")), len(acknowledged))
        for mid in acknowledged:
            with open(self.layout.mess(mid), "rb") as f:
                self.assertTrue(f.read().endswith(b"\n" + (b"y" * 9999 + b"\n") * 5))
