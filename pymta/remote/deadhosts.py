# -*- test-case-name: tests.remote.test_deadhosts -*-
"""
What the delivery channels (SMTP, QMTP, LMTP) do with the dead-host
memory (L{pymta.remote.tcpto}), one rule for all three, as qmail-remote
does with qmail-tcpto's table: an address marked dead is not tried (one
log line on the channel's logger), and the table only ever advises — an
unreadable table skips nothing, an unwritable one is logged and the
delivery goes on.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

from pymta.interfaces import DeliveryJob
from pymta.remote.tcpto import DeadHostMemory

__all__ = ["skipped_as_dead", "remember"]


def skipped_as_dead(memory: DeadHostMemory, log: Logger, job: DeliveryJob, address: str) -> bool:
    """Whether C{job}'s delivery leaves C{address} untried because it did not answer lately."""
    try:
        dead = memory.is_dead(address)
    except OSError:
        return False
    if dead:
        log.info("{job}: {address} is marked dead (no answer lately); not tried", job=job.about(),
                 message_id=job.message_id, address=address)
    return dead


def remember(log: Logger, update: Callable[[str], None], address: str) -> None:
    """C{update(address)} (a timeout or a success recorded); a table that cannot be written is logged."""
    try:
        update(address)
    except OSError as e:
        log.warn("cannot update the dead-host memory: {error}", error=e)
