"""
A queue on disk built by the real writer (L{pymta.queue.store.Queue}) and the
real preprocessing (L{pymta.queue.preprocess.preprocess_batch}), for the
read-only queue commands (qread, qshape, the pipe tests).
"""

from __future__ import annotations

import os
from typing import Sequence

from pymta.control import ControlReader
from pymta.queue.disk import QueueDisk
from pymta.queue.layout import QueueLayout
from pymta.queue.preprocess import preprocess_batch
from pymta.queue.store import Queue

__all__ = ["QueueFiles"]


class QueueFiles:
    """A pymta root at C{root} (control/me = mail.example) with an empty queue."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "control"), exist_ok=True)
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("mail.example\n")
        self.layout = QueueLayout(os.path.join(self.root, "queue"), split=23)
        self.layout.create()
        self.disk = QueueDisk.plain(self.layout)
        self.queue = Queue(self.disk)

    def commit(self, sender: str, recipients: Sequence[str], body: bytes = b"Subject: t\n\nhello\n") -> int:
        """A committed message (in todo/, not yet preprocessed)."""
        writer = self.queue.begin("by uid 0", 0, 1)
        writer.write(body)
        return writer.commit(sender, list(recipients)).message_id

    def preprocess(self, message_ids: Sequence[int], born: float) -> None:
        """Move the messages out of todo/ as pymta-send does; C{born} is their birth time."""
        result = preprocess_batch(self.disk, message_ids, ControlReader(self.root).current, now=born)
        assert not result.trouble and not result.corrupt, result
        assert len(result.done) == len(message_ids)

    def add(self, sender: str, recipients: Sequence[str], born: float) -> int:
        """A preprocessed message born at C{born}."""
        message_id = self.commit(sender, recipients)
        self.preprocess([message_id], born)
        return message_id

    def mark_done(self, message_id: int, channel: str, recipient: str) -> None:
        """Record one recipient as delivered, as the scheduler does (T -> D in place)."""
        path = self.layout.channel(channel, message_id)
        with open(path, "rb") as f:
            data = f.read()
        target = b"T" + recipient.encode() + b"\0"
        at = data.index(target)
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(b"D")
