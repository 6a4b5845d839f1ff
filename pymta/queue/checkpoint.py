# -*- test-case-name: tests.queue.test_scheduler -*-
"""
Checkpointing one judged delivery result before anything else happens, as
qmail-send does: a success overwrites the recipient's C{T} record with
C{D}; a failure is first appended to C{bounce/ID}, then marked C{D}; a
deferral leaves the record alone.  A restart therefore never repeats a
finished delivery, and never loses a failure before its bounce.

A message with DSN data (C{dsn/N/ID}, L{pymta.queue.dsnfile}; known from
memory, L{pymta.queue.dsnbook}, so a message without costs nothing) follows its
recipients' requests: a failure of a recipient whose NOTIFY leaves out
FAILURE (NOTIFY=NEVER) goes into no bounce, and a success of one that asked
for SUCCESS is appended to the dsn file first (C{delivered} by the local
channel, C{relayed} by the remote one unless the next server took the
request over) - should that fail, the recipient is marked done all the
same: a lost notice is better than a second delivery.
"""

from __future__ import annotations

import os

from pymta.dsn.params import RecipientDsn
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
        self.dsn = ctx.dsn

    def record(self, message_id: int, path: str, offset: int, address: str, verdict: Verdict) -> bool:
        """
        Checkpoint C{verdict} for the record at C{offset} of the channel file
        C{path}.  True when the record is now done; a record that could not be
        marked stays C{T} and is tried again later.
        """
        request = self._request(message_id, address) if verdict.status in (FAILURE, SUCCESS) else None
        if verdict.status == FAILURE and request is not None and not request.wants("FAILURE"):
            pass  # NOTIFY=NEVER (or only SUCCESS/DELAY): no failure report
        elif verdict.status == FAILURE:
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
        elif request is not None and request.wants("SUCCESS") and not verdict.notify_passed_on:
            local = os.path.dirname(os.path.dirname(path)) == self.disk.layout.dir("local")
            try:
                self.dsn.append_success(self.disk.layout, message_id, "delivered" if local else "relayed", address)
            except OSError as e:
                self.log.warning(f"unable to record a success notice for msg {message_id}: {e.strerror}")
        try:
            mark_done(path, offset)
        except OSError:
            rel = os.path.relpath(path, self.disk.layout.queuedir)
            self.log.warning(f"trouble marking {rel}; message will be delivered twice!")
            return False
        return True

    def _request(self, message_id: int, address: str) -> RecipientDsn | None:
        """The recipient's DSN request, None for a message without DSN data (or an unreadable dsn file)."""
        found = self.dsn.get(message_id)
        return found.request(address) if found is not None else None
