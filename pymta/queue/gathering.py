# -*- test-case-name: tests.queue.test_gathering -*-
"""
When preprocessing may start: at once, except for messages whose first
attempt came back with nothing delivered, which may wait a moment to be
preprocessed together (docs/internals.md, "First attempt from memory").

Preprocessing a batch costs a few fixed steps whatever its size: an fsync
of each C{info/N} and C{remote/N} (or C{local/N}) directory it wrote to, one
of C{todo/}, the hand-offs to the fsync threads.  Under a load whose
deliveries all defer, each first attempt comes back on its own, a moment
after the one before, so batches would hold one or two messages and every
message would pay those steps alone.  Such a message has nothing to hurry
for - its next attempt is minutes away (the retry schedule counts from the
birth the batch gives it) - and while it waits it is safe: C{todo/ID} is
durable, and a crash only repeats an attempt that delivered nothing, as it
always could.  So L{PreprocessGathering} lets those messages gather until
a full batch waits or the oldest has waited L{GATHER_SECONDS}.  Any other
waiting message (committed by another process, found by a scan, one whose
first attempt delivered something, which is preprocessed at once anyway)
starts a batch at once, which takes the gathered ones along.  So does
SIGALRM / C{pymta ctl doqueue} (L{PreprocessGathering.release}): every
waiting job is due now, and a gathered message is one that waits.

A plain path: L{PreprocessGathering} with C{seconds=0} never holds
anything back (qmail preprocesses each message as it comes).
"""

from __future__ import annotations

from typing import Callable

from pymta.queue.messagestate import MessageState, MessageStates, Stage

__all__ = ["GATHER_SECONDS", "PreprocessGathering"]

#: the longest a message whose first attempt delivered nothing waits to be preprocessed with others
GATHER_SECONDS = 1.0


class PreprocessGathering:
    """
    Decides whether a batch of preprocessing may start now (L{ready}); when
    it may not, calls C{wake} once the oldest gathered message is due.
    C{batch}: the most messages one batch takes (a full batch starts).
    C{later(delay, f)}: a one-shot timer (the scheduler's, cancelled at stop).
    """

    def __init__(self, now: Callable[[], float], later: Callable[[float, Callable[[], None]], None],
                 wake: Callable[[], None], batch: int, seconds: float = GATHER_SECONDS) -> None:
        self._now = now
        self._later = later
        self._wake = wake
        self.batch = batch
        self.seconds = seconds
        #: message id -> when it began to wait and its state (an id can come back), oldest first
        self._gathered: dict[int, tuple[float, MessageState]] = {}
        self._armed = False

    def __len__(self) -> int:
        return len(self._gathered)

    def hold(self, state: MessageState) -> None:
        """The message of C{state} waits for preprocessing and may gather (its first attempt delivered nothing)."""
        if self.seconds > 0:
            self._gathered.setdefault(state.message_id, (self._now(), state))

    def release(self) -> None:
        """Nothing gathered waits any longer: the next L{ready} starts a batch if anything waits."""
        self._gathered.clear()

    def ready(self, messages: MessageStates) -> bool:
        """
        A batch may start now: something waits, and either a message that
        may not gather waits too, or a full batch has gathered, or the
        oldest gathered message is due.  Otherwise the wake-up is set.
        """
        waiting = messages.count(Stage.WAITING)
        if not waiting:
            self._gathered.clear()
            return False
        self._forget_gone(messages)
        if waiting > len(self._gathered) or len(self._gathered) >= self.batch:
            return True
        if not all(_waits(messages, i, state) for i, (_, state) in self._gathered.items()):
            # one deleted by pymta ctl while gathered (its id perhaps back, on another message) must not
            # count for a waiting message that may not gather
            self._gathered = {i: g for i, g in self._gathered.items() if _waits(messages, i, g[1])}
            if waiting > len(self._gathered):
                return True
        due = next(iter(self._gathered.values()))[0] + self.seconds
        now = self._now()
        if now >= due:
            return True
        if not self._armed:
            self._armed = True
            self._later(due - now, self._woken)
        return False

    def _forget_gone(self, messages: MessageStates) -> None:
        """
        Drop the oldest entries that no longer wait.  A batch takes the
        longest waiting first, so those it took are the oldest entries; one
        gone some other way (C{pymta ctl delete}) is dropped when it is the
        oldest, or when it would hold a batch back (L{ready}).
        """
        while self._gathered:
            oldest, (_, state) = next(iter(self._gathered.items()))
            if _waits(messages, oldest, state):
                return
            del self._gathered[oldest]

    def disarm(self) -> None:
        """The wake-up timer was cancelled (the scheduler stopped): the next hold-back sets a new one."""
        self._armed = False

    def _woken(self) -> None:
        self._armed = False
        self._wake()


def _waits(messages: MessageStates, message_id: int, state: MessageState) -> bool:
    """The message gathered as C{state} still waits for preprocessing (that id is not another message now)."""
    return messages.stage(message_id) is Stage.WAITING and messages.get(message_id) is state
