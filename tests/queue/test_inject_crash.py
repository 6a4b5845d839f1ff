"""
The inject socket under a crashing queue manager: a server SIGKILLed while
it commits never acknowledged the message, and the queue stays consistent.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import threads
from twisted.trial import unittest

from pymta.interfaces import QueueRefused
from pymta.queue.cleaner import clean_queue
from pymta.queue.client import enqueue_socket
from pymta.queue.framing import encode_envelope, inject_socket_path, netstring
from pymta.queue.layout import QueueLayout
from pymta.queue.store import PAUSE_ENV
from tests.queue.test_store import files_under

SERVER = """
import os, sys
from twisted.internet import reactor
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue
root = sys.argv[1]
sink = QueueSink(Queue(QueueDisk.plain(QueueLayout(os.path.join(root, "queue")))), reactor,
                 early_entry=sys.argv[2:] == ["early"])
listen_inject(reactor, root, InjectServerFactory(sink)).addCallback(lambda p: print("listening", flush=True))
reactor.run()
"""


class ServerCrashTests(unittest.TestCase):
    def start_server(self, pause_at: str, *args: str):
        self.root = tempfile.mkdtemp(prefix="pymta-crash-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.root, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **{PAUSE_ENV: pause_at}),
        )
        self.addCleanup(self.stop, proc)
        self.assertEqual(proc.stdout.readline(), b"listening\n")
        return proc

    def stop(self, proc) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    def kill_when_paused(self, proc, step: str) -> None:
        self.assertEqual(proc.stderr.readline(), f"paused {step}\n".encode())
        proc.send_signal(signal.SIGKILL)

    def test_killed_before_commit(self):
        proc = self.start_server("link_todo")
        d = threads.deferToThread(enqueue_socket, inject_socket_path(self.root), b"x\n" * 1000, "a@b", ["c@d"])
        d2 = threads.deferToThread(self.kill_when_paused, proc, "link_todo")
        d = self.assertFailure(d, QueueRefused)

        def check(e):
            self.assertFalse(e.permanent)
            self.assertEqual(files_under(self.layout, "todo"), [])
            clean_queue(self.layout, now=time.time() + 60)
            self.assertEqual(files_under(self.layout, "mess"), [])
            self.assertEqual(files_under(self.layout, "intd"), [])

        return d2.addCallback(lambda _: d).addCallback(check)

    def test_killed_after_commit_before_reply(self):
        proc = self.start_server("done")
        d = threads.deferToThread(enqueue_socket, inject_socket_path(self.root), b"x\n", "a@b", ["c@d"])
        d2 = threads.deferToThread(self.kill_when_paused, proc, "done")
        d = self.assertFailure(d, QueueRefused)

        def check(e):
            # not acknowledged, yet durable: a retry may duplicate, nothing is lost
            self.assertFalse(e.permanent)
            self.assertEqual(len(files_under(self.layout, "todo")), 1)
            self.assertEqual(clean_queue(self.layout, now=time.time() + 60), [])

        return d2.addCallback(lambda _: d).addCallback(check)

    def test_killed_with_the_entry_durable_while_the_body_arrives(self):
        proc = self.start_server("entry_durable", "early")
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.connect(inject_socket_path(self.root))
        client.sendall(encode_envelope("", "a@b", ["c@d"]) + netstring(b"Subject: half\n\n"))
        self.kill_when_paused(proc, "entry_durable")  # the rest of the body never comes
        proc.wait()
        self.assertEqual(client.recv(100), b"")  # no reply: nothing acknowledged
        # the durable entry is all there is, invisible to the scheduler, and the cleaner removes it
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.assertEqual(len(files_under(self.layout, "intd")), 1)
        self.assertEqual(len(files_under(self.layout, "mess")), 1)
        removed = clean_queue(self.layout, now=time.time() + 60)
        self.assertEqual(len(removed), 2)
        for name in ("mess", "intd", "pid"):
            self.assertEqual(files_under(self.layout, name), [], name)
