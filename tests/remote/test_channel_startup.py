"""RemoteChannel's start-up reset of the dead-host memory (queue/lock/tcpto)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from pymta.remote.channel import RemoteChannel
from pymta.remote.tcpto import DeadHostMemory, tcpto_path
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import make_root, reader


class DeadHostResetTests(unittest.TestCase):
    def test_reset_waits_for_the_running_reactor(self) -> None:
        """
        Built under twistd the channel is made as root, before the drop: the
        reset happens only once the reactor runs (as the queue's owner), so a
        root without CAP_DAC_OVERRIDE (the systemd units) has nothing to write.
        """
        root = make_root(self.mktemp(), {})
        memory = DeadHostMemory(tcpto_path(root), clock=lambda: 1000.0, pid=0)
        memory.record_timeout("192.0.2.1")
        self.assertEqual([e.address for e in memory.entries()], ["192.0.2.1"])
        reactor = MemoryReactorClock()
        RemoteChannel(root, reader(root), resolver=FakeResolver(), reactor=reactor)
        self.assertEqual(len(memory.entries()), 1, "reset before the reactor runs")
        reactor.run()
        self.assertEqual(memory.entries(), [])
