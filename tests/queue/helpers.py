"""Fixtures shared by the tests of pymta.queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.trial import unittest

from tests.controlfiles import controls_from as controls_from  # the queue tests import it from here

if TYPE_CHECKING:
    from pymta.queue.disk import QueueDisk
    from pymta.queue.layout import QueueLayout
    from pymta.queue.spares import SparePool


def script_syncfs(testcase: unittest.SynchronousTestCase, script: list[int]) -> list[int]:
    """
    Make pymta.queue.syncing's syncfs(2) follow C{script}: each call pops
    the next entry and fails with EIO when it is true.  Returns the list
    (the test may extend it).
    """
    import ctypes
    import errno

    from pymta.queue import syncing

    class ScriptedLibc:
        @staticmethod
        def syncfs(fd: int) -> int:
            if script.pop(0):
                ctypes.set_errno(errno.EIO)
                return -1
            return 0

    testcase.patch(syncing, "_libc", ScriptedLibc())
    return script


def disk_for(layout: "QueueLayout", spares: "SparePool | None" = None,
             mess_spares: "SparePool | None" = None) -> "QueueDisk":
    """qmail's plain queue disk for C{layout}, with the spare pools given."""
    import dataclasses

    from pymta.queue.disk import QueueDisk

    return dataclasses.replace(QueueDisk.plain(layout), spares=spares, mess_spares=mess_spares)
