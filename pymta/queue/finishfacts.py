# -*- test-case-name: tests.queue.test_finishfacts -*-
"""
What the scheduler already knows about a message's files when its last
channel job closes, so that finishing it need not ask the disk again.

When L{pymta.queue.passes.ChannelPasses.close_job} removes the last channel
file of a message, it has just unlinked that file and looked for the other
one: both are known to be gone.  When the message had a single job and that
job knows its reason file is absent (L{pymta.queue.reasons.JobReasons.absent}:
made by preprocessing in this process and never written, or removed by the
rewrite at the job's close), the reason file is known to be gone too.

L{pymta.queue.finishing.Finisher} takes the facts at the start of each
finish; with none (a message found at start, one finished by C{pymta ctl},
one tried again after trouble) it looks at the disk as qmail-send does.
The facts only ever spare a look whose answer is known: every removal that
the crash promise orders stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownGone", "UNKNOWN", "FinishFacts"]


@dataclass(frozen=True)
class KnownGone:
    """Files of a message known to be gone from the queue."""

    #: C{local/N/ID} and C{remote/N/ID}
    channel_files: bool = False
    #: C{reason/N/ID}
    reasons: bool = False


#: nothing is known: finishing looks at the disk
UNKNOWN = KnownGone()


class FinishFacts:
    """The L{KnownGone} facts of messages waiting to be finished, by message id."""

    def __init__(self) -> None:
        self._known: dict[int, KnownGone] = {}

    def __len__(self) -> int:
        return len(self._known)

    def note(self, message_id: int, gone: KnownGone) -> None:
        """C{message_id}'s last job closed just now, leaving C{gone}."""
        if gone == UNKNOWN:
            self._known.pop(message_id, None)
        else:
            self._known[message_id] = gone

    def take(self, message_id: int) -> KnownGone:
        """What is known of C{message_id} (once: a later finish of it looks at the disk)."""
        return self._known.pop(message_id, UNKNOWN)
