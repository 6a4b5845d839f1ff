# -*- test-case-name: tests.queue.test_store_crash -*-
"""
The queue writer's crash-test hook: when the environment variable
C{PYMTA_QUEUE_TEST_PAUSE} names one of L{STEPS}, a writer about to perform
that step writes C{paused <step>\\n} to stderr and sleeps, so a crash test
can SIGKILL it exactly there (tests/queue/test_store_crash.py).
"""

from __future__ import annotations

import os
import time

__all__ = ["STEPS", "EARLY_STEPS", "PAUSE_ENV", "pause_for_crash_test"]

PAUSE_ENV = "PYMTA_QUEUE_TEST_PAUSE"

#: the steps of the write sequence (L{pymta.queue.store}), in the early path's order, as the hook names them
STEPS = (
    "pid",  # before creating the pid file
    "link_mess",  # before linking it into mess/
    "unlink_pid",  # before removing the pid file
    "write_mess",  # before writing the Received line and the data
    "intd",  # before creating intd/ID (at once on the early path, else after the data)
    "fsync_entry",  # early path: before starting the fsyncs of the envelope and the mess/N directory
    "entry_durable",  # early path: after they returned (in the sync pool), while the data arrives
    "fsync_mess",  # before the mess file's buffered data is written out
    "fsync_intd",  # before fsyncing the mess file and the envelope (early path: the mess file alone;
    # alone: the mess/N directory at the same time)
    "link_todo",  # before the commit point (after the mess/N directories are fsynced)
    "fsync_todo",  # after the commit point, before the todo directory is durable
    "trigger",  # before pulling the trigger
    "done",  # after everything, before returning the receipt
)

#: the steps only the early path (L{pymta.queue.store.PendingMessage.start_entry}) takes
EARLY_STEPS = ("fsync_entry", "entry_durable")

#: the step the hook stops at in this process (read once: checked a dozen times per message)
_PAUSE_AT = os.environ.get(PAUSE_ENV)


def pause_for_crash_test(step: str) -> None:
    """Stop for good before C{step} when C{PYMTA_QUEUE_TEST_PAUSE} names it."""
    if _PAUSE_AT == step:
        os.write(2, f"paused {step}\n".encode())
        while True:
            time.sleep(3600)
