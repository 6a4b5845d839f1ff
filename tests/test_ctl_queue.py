"""
`pymta ctl delete|hold|release|retry|bounce` against a real C{twistd
pymta-send} (as a child process) through C{pymta ctl} as a subprocess:

- a message deferred on a dead route (smtproutes to a 127.0.0.1 port
  nobody listens on) is retried, held, released, bounced and deleted as
  docs/queue.md says;
- SIGKILL during C{ctl delete --domain} on a queue of 1,000 messages: every
  message is afterwards fully gone or fully intact, and pymta-send starts
  clean.

Set PYMTA_CTL_SEED to replay another kill moment (the seed is in the test log).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

from twisted.logger import Logger
from twisted.trial import unittest

from pymta.queue.layout import QueueLayout
from tests.loadtools import DOMAIN, USER, CrashRig, free_port
from tests.queue.test_scheduler import queue_message
from tests.waiting import wait_until

log = Logger()

SEED = int(os.environ.get("PYMTA_CTL_SEED", "20261201"))
MESSAGES = 1000
SENDER = f"{USER}@{DOMAIN}"


class DeadRouteRig:
    """A pymta root whose remote route for C{dead.example} and C{other.example} goes to a closed port."""

    def __init__(self, testcase: unittest.TestCase) -> None:
        self.rig = CrashRig(SEED)
        testcase.addCleanup(self.rig.remove)
        testcase.addCleanup(self.rig.stop)
        self.root = self.rig.root
        port = free_port()
        with open(os.path.join(self.root, "control", "smtproutes"), "w") as f:
            f.write(f"dead.example:[127.0.0.1]:{port}\nother.example:[127.0.0.1]:{port}\n")
        self.layout = QueueLayout.for_root(self.root)
        st = os.stat(self.layout.queuedir)
        self.owner = (st.st_uid, st.st_gid)

    def queue(self, recipients: list[str], age: float = 0) -> int:
        """A committed message in todo/, written as the queue writer does (owned by the queue's owner)."""
        mid = queue_message(self.layout, SENDER, recipients)
        for path in (self.layout.mess(mid), self.layout.todo(mid)):
            os.chown(path, *self.owner)
            if age:
                then = time.time() - age
                os.utime(path, (then, then))
        return mid

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.rig.pymta("ctl", "--root", self.root, *args, check=False)

    def log_text(self) -> str:
        with open(self.rig.send.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def files(self, mid: int) -> set[str]:
        layout = self.layout
        paths = {"mess": layout.mess(mid), "info": layout.info(mid), "remote": layout.remote(mid),
                 "local": layout.local(mid), "todo": layout.todo(mid), "intd": layout.intd(mid),
                 "bounce": layout.bounce(mid), "hold": layout.hold(mid)}
        return {name for name, path in paths.items() if os.path.exists(path)}


class DeadRouteTests(unittest.TestCase):
    def test_actions_on_a_deferred_message(self) -> None:
        rig = DeadRouteRig(self)
        mid = rig.queue(["r@dead.example"])
        rig.rig.send.start(30)
        self.assertTrue(wait_until(lambda: "delivery 1: deferral" in rig.log_text()), rig.log_text()[-2000:])
        self.assertTrue(wait_until(lambda: "jobs_running: 0" in rig.ctl("stat").stdout))

        dry = rig.ctl("delete", "--domain", "dead.example", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn(f"msg {mid} age ", dry.stdout)
        self.assertIn(f"from <{SENDER}> to r@dead.example", dry.stdout)
        self.assertEqual(rig.files(mid), {"mess", "info", "remote"})

        retry = rig.ctl("retry", str(mid))
        self.assertEqual((retry.returncode, retry.stdout.splitlines()[0]), (0, f"msg {mid}: due now"))
        self.assertTrue(wait_until(lambda: "starting delivery 2:" in rig.log_text()))

        # held at once, or once the delivery the retry started is over
        self.assertRegex(rig.ctl("hold", str(mid)).stdout.splitlines()[0], rf"msg {mid}: (held|busy; will be held)")
        self.assertTrue(wait_until(lambda: rig.files(mid) == {"mess", "info", "remote", "hold"}))
        self.assertIn(f"msg {mid} remote held", rig.ctl("queue").stdout)
        self.assertIn(" held", rig.rig.pymta("qread", "--root", rig.root).stdout)
        rig.ctl("doqueue")
        time.sleep(0.5)  # nothing may happen: there is no event to wait for
        self.assertNotIn("starting delivery 3:", rig.log_text())

        # held across a restart
        rig.rig.send.stop()
        rig.rig.send.start(30)
        self.assertIn(f"msg {mid} remote held", rig.ctl("queue").stdout)
        release = rig.ctl("release", str(mid))
        self.assertEqual(release.stdout.splitlines()[0], f"msg {mid}: released")
        self.assertTrue(wait_until(lambda: "starting delivery 1:" in rig.log_text().split("=== start 2")[1]))
        self.assertNotIn("hold", rig.files(mid))

        bounce = rig.ctl("bounce", str(mid), "--reason", "the route is gone for good")
        self.assertRegex(bounce.stdout.splitlines()[0], rf"msg {mid}: (bounced|busy; will be bounced)")
        self.assertTrue(wait_until(lambda: not rig.files(mid)), (bounce.stdout, rig.files(mid)))
        self.assertIn(f"bounce msg {mid} by ctl: the_route_is_gone_for_good", rig.log_text())
        self.assertTrue(wait_until(lambda: self.maildir_has(rig, b"the route is gone for good")))

        other = rig.queue(["s@dead.example"])
        rig.ctl("doqueue")
        self.assertTrue(wait_until(lambda: "info" in rig.files(other) and "todo" not in rig.files(other)))
        self.assertRegex(rig.ctl("delete", "--sender", SENDER).stdout, rf"msg {other}: (deleted|busy; will be)")
        self.assertTrue(wait_until(lambda: not rig.files(other)))
        self.assertIn(f"delete msg {other} by ctl", rig.log_text())
        none = rig.ctl("delete", str(other))
        self.assertEqual((none.returncode, none.stdout.splitlines()[-1]), (0, "no message matched"))
        bad = rig.ctl("delete", "--older-than", "soon")
        self.assertEqual(bad.returncode, 100)
        self.assertIn("bad age 'soon'", bad.stderr)
        self.assertEqual(rig.rig.log_troubles(), [])

    @staticmethod
    def maildir_has(rig: DeadRouteRig, text: bytes) -> bool:
        new = os.path.join(rig.rig.maildir, "new")
        for name in os.listdir(new) if os.path.isdir(new) else []:
            with open(os.path.join(new, name), "rb") as f:
                if text in f.read():
                    return True
        return False


class KilledDeleteTests(unittest.TestCase):
    def test_sigkill_during_delete_by_domain(self) -> None:
        rng = random.Random(SEED)
        rig = DeadRouteRig(self)
        # message files dated an hour back, as in a queue that has waited: a lone one is a leftover at once
        doomed = [rig.queue([f"r{n}@dead.example"], age=3600) for n in range(MESSAGES)]
        kept = [rig.queue([f"k{n}@other.example"], age=3600) for n in range(20)]
        rig.rig.send.start(60)
        # every message preprocessed and its first attempt over
        self.assertTrue(wait_until(lambda: all(rig.files(m) == {"mess", "info", "remote"} for m in doomed + kept)
                                   and "jobs_running: 0" in rig.ctl("stat").stdout, timeout=120))
        intact = {"mess", "info", "remote"}

        info_count = lambda: sum(len(os.listdir(os.path.join(rig.layout.dir("info"), str(n))))  # noqa: E731
                                 for n in range(rig.layout.split))
        before = info_count()
        client = subprocess.Popen([sys.executable, "-m", "pymta.cli.main", "ctl", "--root", rig.root, "delete",
                                   "--domain", "dead.example"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(client.wait)
        # once the delete has begun (an info file went), wait a random moment and kill
        self.assertTrue(wait_until(lambda: info_count() < before, timeout=60, interval=0.001))
        delay = rng.uniform(0, 0.6)  # the whole delete of 1,000 messages takes about that long here
        time.sleep(delay)
        rig.rig.send.kill()
        states = {m: frozenset(rig.files(m)) for m in doomed}
        half = sum(1 for s in states.values() if s and s != intact)
        log.info("killed {delay:.4f} s into the delete (seed {seed}): {gone} gone, {half} half, {whole} intact",
                 delay=delay, seed=SEED, gone=sum(1 for s in states.values() if not s), half=half,
                 whole=sum(1 for s in states.values() if s == intact))

        started = len(open(rig.rig.send.log, "rb").read())
        rig.rig.send.start(60)
        for mid in doomed:
            self.assertIn(rig.files(mid), (set(), intact), mid)
        for mid in kept:
            self.assertEqual(rig.files(mid), intact, mid)
        with open(rig.rig.send.log, encoding="utf-8", errors="replace") as f:
            f.seek(started)
            restart = f.read()
        troubles = [line for line in restart.splitlines()
                    if ("warning:" in line or "alert:" in line or "Traceback" in line or "Unhandled" in line)]
        self.assertEqual(troubles, [])
        # what survived is intact: it can be deleted now
        self.assertTrue(wait_until(lambda: "jobs_running: 0" in rig.ctl("stat").stdout, timeout=60))
        again = rig.ctl("delete", "--domain", "dead.example")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertTrue(wait_until(lambda: all(not rig.files(m) for m in doomed), timeout=60))
        self.assertEqual([m for m in kept if rig.files(m) != intact], [])
        self.assertEqual(rig.rig.log_troubles(), [])
