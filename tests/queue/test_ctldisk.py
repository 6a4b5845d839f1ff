"""
Tests for pymta.queue.ctldisk and the crash cleaner's part in a delete:
every prefix of a delete's removals leaves a queue the next start settles.
"""

from __future__ import annotations

import os
import time

from twisted.trial import unittest

from pymta.queue import ctldisk
from pymta.queue.cleaner import clean_queue
from pymta.queue.layout import QueueLayout
from tests.queue.helpers import disk_for
from tests.queue.test_scheduler import queue_message


def preprocessed(layout: QueueLayout) -> int:
    """A preprocessed message with every file a message can have (bounce, hold, both channel files)."""
    mid = queue_message(layout, "a@x.example", [])
    os.unlink(layout.todo(mid))
    for path, data in ((layout.info(mid), b"Fa@x.example\0"), (layout.local(mid), b"Tb@x.example\0"),
                       (layout.remote(mid), b"Tc@y.example\0"), (layout.bounce(mid), b"<d@z>:\nno\n\n"),
                       (layout.hold(mid), b"")):
        with open(path, "wb") as f:
            f.write(data)
    return mid


class CtlDiskTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.abspath(self.mktemp()), split=23)
        self.layout.create()
        self.disk = disk_for(self.layout)

    def files(self, mid: int) -> list[str]:
        layout = self.layout
        paths = [layout.mess(mid), layout.info(mid), layout.todo(mid), layout.intd(mid),
                 *ctldisk.leftover_paths(layout, mid)]
        return sorted({os.path.relpath(p, layout.queuedir) for p in paths if os.path.exists(p)})

    def test_holds(self) -> None:
        os.rmdir(self.layout.dir("hold"))  # a queue made before hold/ existed
        self.assertEqual(ctldisk.list_held(self.layout), set())
        self.assertEqual(ctldisk.write_holds(self.disk, [5, 7]), {})
        self.assertEqual(ctldisk.list_held(self.layout), {5, 7})
        self.assertEqual(ctldisk.remove_holds(self.disk, [5, 9]), {})
        self.assertEqual(ctldisk.list_held(self.layout), {7})

    def test_delete_removes_every_file(self) -> None:
        mid = preprocessed(self.layout)
        waiting = queue_message(self.layout, "a@x.example", ["b@x.example"])
        with open(self.layout.intd(waiting), "wb") as f:
            f.write(b"x")
        self.assertEqual(ctldisk.delete_messages(self.disk, [mid, waiting]), {})
        self.assertEqual((self.files(mid), self.files(waiting)), ([], []))

    def test_every_prefix_of_a_delete_is_settled_by_the_cleaner(self) -> None:
        """A crash after each removal: the message is whole (info still there) or the cleaner removes it all."""
        order = lambda m: [self.layout.info(m), *ctldisk.leftover_paths(self.layout, m)]  # noqa: E731
        for crash_after in range(len(order(0)) + 1):
            mid = preprocessed(self.layout)
            whole = self.files(mid)
            for path in order(mid)[:crash_after]:
                if os.path.exists(path):  # a preprocessed message has no intd/
                    os.unlink(path)
            # a lone message file (the crash came just before its unlink) is an ordinary leftover: once past grace
            removed = clean_queue(self.layout, now=time.time() + 11, grace=10.0)
            if crash_after == 0:
                self.assertEqual((self.files(mid), removed), (whole, []))
            else:
                self.assertEqual(self.files(mid), [], crash_after)
