"""Tests for pymta.queue.client: the blocking client of command-line tools."""

import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import shutil

from twisted.trial import unittest

from pymta.interfaces import QueueRefused
from pymta.queue import client
from pymta.queue.envelope import parse_todo
from pymta.queue.layout import QueueLayout
from tests.queue.test_store import files_under


class DirectFallbackTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-cli-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()

    def test_direct_write_without_daemon(self) -> None:
        receipt = client.enqueue(self.root, b"Subject: x\n\nbody\n", "a@b", ["c@d", "e@f"])
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            env = parse_todo(f.read())
        self.assertEqual((env.uid, env.pid, env.recipients), (os.getuid(), receipt.qp, ("c@d", "e@f")))
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            self.assertIn(b"invoked by uid %d);" % os.getuid(), f.readline())

    def test_stream_input_and_origin(self) -> None:
        body = b"x" * 200000
        receipt = client.enqueue(self.root, io.BytesIO(body), "", ["c@d"], origin="for bounce")
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            self.assertIn(b"invoked for bounce);", f.readline())
            self.assertEqual(f.read(), body)

    def test_stale_socket_file(self) -> None:
        path = os.path.join(self.root, "run", "inject.sock")
        os.makedirs(os.path.dirname(path))
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the file stays, nobody listens: ECONNREFUSED
        receipt = client.enqueue(self.root, b"x\n", "a@b", ["c@d"])
        self.assertTrue(os.path.exists(self.layout.todo(receipt.message_id)))

    def test_bad_envelope_refused_before_anything(self) -> None:
        e = self.assertRaises(QueueRefused, client.enqueue, self.root, b"x", "a\nb", ["c@d"])
        self.assertTrue(e.permanent)
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_not_allowed(self) -> None:
        self.patch(client, "may_write_queue", lambda queuedir: False)
        e = self.assertRaises(QueueRefused, client.enqueue, self.root, b"x", "a@b", ["c@d"])
        self.assertFalse(e.permanent)
        self.assertIn("only root or the owner", str(e))
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_missing_root(self) -> None:
        e = self.assertRaises(QueueRefused, client.enqueue, os.path.join(self.root, "nope"), b"x", "a@b", ["c@d"])
        self.assertFalse(e.permanent)
        self.assertIn("is not a queue directory", str(e))

    def test_may_write_queue(self) -> None:
        self.assertTrue(client.may_write_queue(self.layout.queuedir))
        self.assertFalse(client.may_write_queue(os.path.join(self.root, "nope")))

    def test_unprivileged_user_refused(self) -> None:
        if os.getuid() != 0:
            raise unittest.SkipTest("needs root to switch to another uid")
        os.chmod(self.root, 0o755)
        code = (
            "import sys, os\n"
            "from pymta.queue import client\n"
            "from pymta.interfaces import QueueRefused\n"
            "import pymta.queue.store, pymta.queue.framing, encodings.idna\n"
            "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            "    client.enqueue(sys.argv[1], b'x', 'a@b', ['c@d'])\n"
            "except QueueRefused as e:\n"
            "    print('refused', e.permanent, e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, self.root], capture_output=True, text=True, timeout=60)
        self.assertIn("refused False qq trouble making network connection (#4.3.0)", out.stdout, out.stderr)
        self.assertEqual(files_under(self.layout, "mess"), [])


class SocketTroubleTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pymta-st-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "inject.sock")
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(1)
        self.addCleanup(self.server.close)

    def test_no_reply_times_out(self) -> None:
        self.patch(client, "_REPLY_TIMEOUT", 0.2)
        e = self.assertRaises(QueueRefused, client.enqueue_socket, self.path, b"x\n", "a@b", ["c@d"])
        self.assertEqual(e.text, "qq timeout (#4.3.0)")
        self.assertFalse(e.permanent)

    def test_garbage_reply(self) -> None:
        def answer():
            conn, _ = self.server.accept()
            with conn:
                conn.sendall(b"5:hello,")
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass

        t = threading.Thread(target=answer)
        t.start()
        self.addCleanup(t.join)
        e = self.assertRaises(QueueRefused, client.enqueue_socket, self.path, b"x\n", "a@b", ["c@d"])
        self.assertEqual(e.text, "qq trouble making network connection (#4.3.0)")

    def test_connection_closed_without_reply(self) -> None:
        def close_at_once():
            conn, _ = self.server.accept()
            conn.close()

        t = threading.Thread(target=close_at_once)
        t.start()
        self.addCleanup(t.join)
        e = self.assertRaises(QueueRefused, client.enqueue_socket, self.path, b"x\n" * 100000, "a@b", ["c@d"])
        self.assertFalse(e.permanent)
