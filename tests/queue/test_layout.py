"""
The queue's paths (L{pymta.queue.layout}): each is the one C{os.path.join}
makes of the queue directory, the subdirectory and the message's id.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.layout import QueueLayout


def joined(queuedir: str, split: int, top: str, message_id: int, flat: bool = False) -> str:
    if flat:
        return os.path.join(queuedir, top, str(message_id))
    return os.path.join(queuedir, top, str(message_id % split), str(message_id))


class PathTests(unittest.TestCase):
    QUEUEDIRS = ("/var/qmail/queue", "/var/qmail/queue/", "relative/queue", "queue")
    IDS = (0, 1, 22, 23, 24, 4095, 131_073, 2**40 + 7)

    def test_split_paths(self) -> None:
        for queuedir in self.QUEUEDIRS:
            for split in (1, 23, 151):
                layout = QueueLayout(queuedir, split)
                for message_id in self.IDS:
                    for top, made in (("mess", layout.mess), ("info", layout.info), ("local", layout.local),
                                      ("remote", layout.remote), ("reason", layout.reason)):
                        self.assertEqual(made(message_id), joined(queuedir, split, top, message_id))
                    for name in ("local", "remote"):
                        self.assertEqual(layout.channel(name, message_id), joined(queuedir, split, name, message_id))

    def test_flat_paths(self) -> None:
        for queuedir in self.QUEUEDIRS:
            layout = QueueLayout(queuedir, 23)
            for message_id in self.IDS:
                for top, made in (("intd", layout.intd), ("todo", layout.todo), ("bounce", layout.bounce),
                                  ("hold", layout.hold)):
                    self.assertEqual(made(message_id), joined(queuedir, 23, top, message_id, flat=True))

    def test_subdir(self) -> None:
        layout = QueueLayout("/q", 23)
        self.assertEqual([layout.subdir(i) for i in (0, 22, 23, 47)], ["0", "22", "0", "1"])
        self.assertEqual(os.path.dirname(layout.mess(47)), "/q/mess/1")

    def test_channel_refuses_other_names(self) -> None:
        layout = QueueLayout("/q", 23)
        self.assertRaises(ValueError, layout.channel, "mess", 1)
        self.assertRaises(ValueError, layout.channel, "../local", 1)

    def test_split_read_from_file(self) -> None:
        queuedir = self.mktemp()
        os.makedirs(queuedir)
        with open(os.path.join(queuedir, "split"), "w") as f:
            f.write("7\n")
        layout = QueueLayout(queuedir)
        self.assertEqual(layout.split, 7)
        self.assertEqual(layout.mess(15), os.path.join(queuedir, "mess", "1", "15"))
