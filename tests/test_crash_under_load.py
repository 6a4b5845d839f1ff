"""
Crash safety under load: real C{twistd pymta-send} and C{twistd pymta-smtpd}
processes (and, in a second test, one C{twistd pymta}) take a few hundred
messages from concurrent smtplib clients while they are SIGKILLed at seeded
random moments and restarted.  Every message a
client saw C{250} for must end up in the user's Maildir; duplicates and
deliveries without a C{250} (both allowed, as in qmail) are counted and
logged.

Set PYMTA_CRASH_SEED to replay another schedule; the seed in use is in the
test log (_trial_temp/test.log).
"""

from __future__ import annotations

import os
import time

from twisted.logger import Logger
from twisted.trial import unittest

from pymta.queue.cleaner import GRACE
from tests.loadtools import CrashRig, LoadClients, tally

log = Logger()

SEED = int(os.environ.get("PYMTA_CRASH_SEED", "20261129"))
MESSAGES = 300
MESSAGE_LIMIT = 3000
CLIENTS = 6
KILLS = 8
KILLS_ALL_IN_ONE = 5
SEND_SECONDS = 45.0
DRAIN_SECONDS = 25.0
#: qmail's default, which the rig's root keeps
CONCURRENCY_LOCAL = 10


class CrashUnderLoadTests(unittest.SynchronousTestCase):
    def test_no_acknowledged_message_is_lost(self) -> None:
        """pymta-send and pymta-smtpd as separate processes, killed alone or together."""
        self.check_crashes(all_in_one=False, kills=KILLS)

    def test_all_in_one(self) -> None:
        """
        C{twistd pymta}: smtpd and the queue in one process, with the
        in-process inject path; its queue syncs with syncfs
        (control/queuesync), so both ways of making the queue durable are
        crashed.
        """
        self.check_crashes(all_in_one=True, kills=KILLS_ALL_IN_ONE, queuesync="syncfs")

    def check_crashes(self, all_in_one: bool, kills: int, queuesync: str = "fsync") -> None:
        started = time.monotonic()
        rig = CrashRig(SEED, all_in_one=all_in_one, queuesync=queuesync)
        if not os.environ.get("PYMTA_CRASH_KEEP"):
            self.addCleanup(rig.remove)
        self.addCleanup(rig.stop)
        rig.start()

        clients = LoadClients(rig.port, MESSAGES, CLIENTS, limit=MESSAGE_LIMIT)
        clients.start(time.monotonic() + SEND_SECONDS)
        rig.run_chaos(clients, kills, gap=(0.1, 0.8), down=(0.0, 0.4), started=started)
        clients.join()
        sent = time.monotonic()
        remaining = rig.drain(DRAIN_SECONDS)
        drained = time.monotonic()
        result = tally(rig.maildir, clients, rig.send.log, rig.events)
        leftovers = rig.crash_leftovers()
        # pymta-send's crash cleaner removes them once they are older than its grace time
        qstat = rig.clean_leftovers(GRACE, DRAIN_SECONDS)
        cleaned = time.monotonic()

        report = (
            f"crash under load ({'twistd pymta' if all_in_one else 'pymta-send + pymta-smtpd'}, seed {SEED}): "
            f"{result.summary()}; "
            f"attempts {clients.attempts}, client errors {dict(clients.failures)}; "
            f"kills {[(round(e.at, 2), '+'.join(e.victims)) for e in rig.events]}; "
            f"root {rig.base}; sending {sent - started:.1f} s, draining {drained - sent:.1f} s; "
            f"committed messages left {remaining}, "
            f"crash leftovers (never committed) {leftovers}, qstat after a clean restart {qstat} "
            f"({cleaned - drained:.1f} s)"
        )
        log.info("{report}", report=report)
        print(report)
        if result.duplicates:
            log.info("duplicated attempts: {d}", d=result.duplicates)
        if result.unacknowledged_deliveries:
            log.info("delivered without 250: {u}", u=result.unacknowledged_deliveries)

        self.assertEqual(result.lost, [], f"acknowledged but never delivered\n{report}")
        self.assertEqual(result.duplicate_causes.get("unexplained"), 0,
                         f"a message was delivered twice without a crash in between\n{report}")
        # at most concurrencylocal deliveries are in flight when pymta-send dies
        send_kills = sum(1 for e in rig.events if "send" in e.victims)
        self.assertLessEqual(result.duplicate_count, CONCURRENCY_LOCAL * send_kills, report)
        self.assertEqual(result.unacknowledged_without_crash, {},
                         f"a message was refused to the client but delivered, with no kill at that time\n{report}")
        self.assertEqual(rig.log_troubles(), [], "a daemon logged an internal error")
        self.assertEqual(result.untagged_files, [], "files in the Maildir that no client sent")
        self.assertEqual(len(rig.events), kills, f"the load ended before every planned crash\n{report}")
        self.assertEqual(len(clients.acked_messages), clients.taken,
                         f"the clients could not get every message accepted in time\n{report}")
        self.assertEqual(remaining, 0, f"committed messages left in the queue\n{report}")
        self.assertEqual(qstat, (0, 0), f"the queue is not empty after the cleaner ran\n{report}")
        # the cleaner removed no message that had been acknowledged (tally ran before it)
        self.assertEqual(tally(rig.maildir, clients).lost, [])
