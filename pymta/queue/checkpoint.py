# -*- test-case-name: tests.queue.test_scheduler -*-
"""
Checkpointing one judged delivery result before anything else happens, as
qmail-send does: a success overwrites the recipient's C{T} record with
C{D}; a failure is first appended to C{bounce/ID}, then marked C{D}; a
deferral leaves the record alone.  A restart therefore never repeats a
finished delivery, and never loses a failure before its bounce.
"""

from __future__ import annotations

import os

from pymta.interfaces import FAILURE, SUCCESS
from pymta.queue import bounce as bounces
from pymta.queue.routing import strip_virtual_prepend
from pymta.queue.sendfiles import append_bounce, mark_done
from pymta.queue.verdict import Verdict
from pymta.queue.sendcontext import SendContext

__all__ = ["Checkpoint"]


class Checkpoint:
    """Writes verdicts into channel and bounce files."""

    def __init__(self, ctx: SendContext) -> None:
        self.disk = ctx.disk
        self.controls = ctx.controls
        self.log = ctx.log

    def record(self, message_id: int, path: str, offset: int, address: str, verdict: Verdict) -> bool:
        """
        Checkpoint C{verdict} for the record at C{offset} of the channel file
        C{path}.  True when the record is now done; a record that could not be
        marked stays C{T} and is tried again later.
        """
        if verdict.status == FAILURE:
            recipient = strip_virtual_prepend(address, self.controls.current)
            try:
                append_bounce(self.disk.layout, message_id, bounces.bounce_entry(recipient, verdict.text),
                              self.disk.new_file_owner)
            except OSError as e:
                # not marking it done keeps the failure: it is tried (and fails) again later
                self.log.alert(f"unable to append to bounce message: {e.strerror}; will try again later")
                return False
        elif verdict.status != SUCCESS:
            return False
        try:
            mark_done(path, offset)
        except OSError:
            rel = os.path.relpath(path, self.disk.layout.queuedir)
            self.log.warning(f"trouble marking {rel}; message will be delivered twice!")
            return False
        return True
