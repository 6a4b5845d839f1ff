# -*- test-case-name: tests.queue.test_reasons -*-
"""
Keeping the reason file (L{pymta.queue.reasons}) of each scheduled message
up to date as its channel jobs run, for L{pymta.queue.passes.ChannelPasses}.

The order is the queue's: a batch's results are judged, logged and
checkpointed in the channel file first; only then does L{ReasonBook.noted}
append the deferrals' texts (one write per batch).  A delivered or failed
recipient's old line stays until its pass closes; L{ReasonBook.closed}
then rewrites the file without it (and without superseded lines), or
drops the channel's lines altogether when the channel file is about to go.
The reasons of a message go with it: L{pymta.queue.finishing.Finisher}
removes the file before C{info/N/ID}, quarantine moves it along, and the
cleaner removes one whose message is gone.  A reason that cannot be
written is logged and forgotten; it never holds up a delivery.
"""

from __future__ import annotations

import os

from pymta.interfaces import FAILURE, SUCCESS
from pymta.queue.channeljob import ChannelJob
from pymta.queue.reasons import Reason, append_reasons, compact, latest, read_reasons
from pymta.queue.verdict import Verdict
from pymta.queue.sendcontext import SendContext

__all__ = ["ReasonBook", "MANGLED_TEXT"]

#: the reason kept for a report that could not be understood
MANGLED_TEXT = "report mangled, will defer"


class ReasonBook:
    """Writes and reads the reasons of the scheduler's channel jobs (see the module docstring)."""

    def __init__(self, ctx: SendContext) -> None:
        self.disk = ctx.disk
        self.log = ctx.log

    def noted(self, job: ChannelJob, verdicts: list[tuple[str, Verdict]], now: int) -> None:
        """The verdicts of one batch of C{job} are checkpointed: keep the deferrals' texts."""
        state = job.reasons
        new = []
        for address, verdict in verdicts:
            if verdict.status in (SUCCESS, FAILURE):
                if state.kept is not False:
                    state.cleared.add(address)
                if state.last is not None and state.last.address == address:
                    state.last = None
            else:
                text = verdict.text if verdict.status is not None else MANGLED_TEXT
                new.append(Reason(job.channel, address, now, text))
                state.cleared.discard(address)
        self._append(job, new)

    def trouble(self, job: ChannelJob, text: str, now: int) -> None:
        """A pass of C{job} could not open: the reason concerns all of its recipients."""
        self._append(job, [Reason(job.channel, "", now, text)])

    def _append(self, job: ChannelJob, new: list[Reason]) -> None:
        if not new:
            return
        job.reasons.absent = False
        try:
            append_reasons(self.disk, job.message_id, new)
        except (OSError, ValueError) as e:
            self.log.warning(f"unable to keep the reason of msg {job.message_id}: {getattr(e, 'strerror', None) or e}")
            return
        state = job.reasons
        state.kept = True
        state.appended = True
        state.last = new[-1]

    def closed(self, job: ChannelJob) -> None:
        """
        C{job}'s pass is over (before its channel file may be removed):
        drop the lines of recipients no longer waiting, superseded lines and
        the channel's line; all of the channel's lines when none is waiting.
        """
        state = job.reasons
        if state.kept is False or not (state.appended or state.cleared or job.undone == 0):
            return
        channel, gone, finished = job.channel, set(state.cleared), job.undone == 0

        def keep(reason: Reason) -> bool:
            return reason.channel != channel or not (finished or reason.address == "" or reason.address in gone)

        try:
            kept = compact(self.disk, job.message_id, keep)
        except OSError as e:
            self.log.warning(f"unable to rewrite the reasons of msg {job.message_id}: {e.strerror}")
            return
        mine = [r for r in kept if r.channel == channel]
        state.absent = not kept  # compact removed the file
        state.kept = bool(mine)
        state.appended = False
        state.cleared.clear()
        state.last = max(mine, key=lambda r: r.at, default=None)

    def last(self, job: ChannelJob) -> Reason | None:
        """The newest reason of C{job}'s waiting recipients (read from the file once after a restart)."""
        state = job.reasons
        if state.last is None and state.kept is not False:
            birth = job.birth or self._birth(job.message_id)
            # a reason older than the message belongs to an earlier life of its id (as qread filters)
            mine = [r for r in latest(read_reasons(self.disk.layout, job.message_id)).values()
                    if r.channel == job.channel and r.at >= birth]
            if not mine and state.kept is None:
                state.kept = False  # nothing to read next time
            state.last = max((r for r in mine if r.address not in state.cleared), key=lambda r: r.at, default=None)
        return state.last

    def _birth(self, message_id: int) -> int:
        """The message's birth (its info file's mtime) before its first pass has read it; 0 if unknown."""
        try:
            return int(os.stat(self.disk.layout.info(message_id)).st_mtime)
        except OSError:
            return 0
