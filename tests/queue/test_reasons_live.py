"""
Why a message waits, end to end: a message to a dead route (smtproutes to
a 127.0.0.x port nobody listens on) through a real C{twistd pymta-send}
shows its reason in C{pymta qread} and in C{pymta ctl queue}, and the
remote channel's log line names its message id.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import sys
import tempfile

from twisted.internet import reactor, utils
from twisted.trial import unittest

from pymta.remote.channel import TEXT_NO_CONNECTION
from tests.queue.test_service import PROJECT, wait_for
from tests.queue.test_tap import _Collect

DEAD = "127.0.0.9"


def unused_port(address: str) -> int:
    """A port nobody listens on at C{address} (bound and released at once)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class DeadRouteTests(unittest.TestCase):
    timeout = 90

    async def pymta(self, env: dict[str, str], *args: str, stdin: bytes = b"") -> str:
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-m", "pymta.cli.main", *args], env=env, path=PROJECT, stdinBytes=stdin)
        self.assertEqual(code, 0, err)
        return out.decode("utf-8", "replace")

    async def test_reason_in_qread_ctl_queue_and_log(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-why-")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)
        root = os.path.join(base, "root")
        env = dict(os.environ, PYTHONPATH=PROJECT, PYMTA_ROOT=root)
        init = ["init", root, "--me", "mail.example"]
        twistd_uid: list[str] = []
        if os.getuid() == 0:
            init += ["--mail-uid", "65534:65534"]
            twistd_uid = ["--uid", "65534", "--gid", "65534"]
        await self.pymta(env, *init)
        port = unused_port(DEAD)
        with open(os.path.join(root, "control", "smtproutes"), "w") as f:
            f.write(f"dead.example:{DEAD}:{port}\n")

        proto = _Collect()
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        args = [sys.executable, "-c", twistd, "-n", "--pidfile=", "--logfile=-", *twistd_uid,
                "pymta-send", "--root", root, "--stop-timeout", "5"]
        process = reactor.spawnProcess(proto, sys.executable, args, env=env, path=PROJECT)
        try:
            await wait_for(lambda: os.path.exists(os.path.join(root, "run", "ctl.sock")), timeout=30)
            await self.pymta(env, "inject", "-f", "alice@mail.example", "bob@dead.example",
                             stdin=b"Subject: why\n\nwaiting\n")
            await wait_for(lambda: b": deferral: " in proto.output, timeout=30)
            # written right after the deferral is checkpointed, in one write
            await wait_for(lambda: glob.glob(os.path.join(root, "queue", "reason", "*", "*")), timeout=30)
            listing = await self.pymta(env, "qread")
            queue = await self.pymta(env, "ctl", "queue")
        finally:
            if process.pid is not None:
                process.signalProcess("TERM")
            await proto.ended
        log = proto.output.decode("utf-8", "replace")
        found = re.search(r"#(\d+) ", listing)
        self.assertIsNotNone(found, listing)
        assert found is not None
        mid = found.group(1)
        reason = TEXT_NO_CONNECTION.rstrip("\n")
        lines = listing.splitlines()
        self.assertEqual(lines[1], "\tremote\tbob@dead.example")
        self.assertRegex(lines[2], r"^\t\t\d+ \w{3} \d{4} \d\d:\d\d:\d\d GMT \(" + re.escape(reason) + r"\)$")
        self.assertEqual(len(lines), 3, listing)
        queue_lines = queue.splitlines()
        self.assertTrue(queue_lines[0].startswith(f"msg {mid} remote next try "), queue)
        self.assertRegex(queue_lines[1], r"^  last error \d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT \(" + re.escape(reason) + r"\)$")
        numbers = re.findall(rf"starting delivery (\d+): msg {mid} to remote bob@dead.example", log)
        self.assertEqual(len(numbers), 1, log)
        self.assertIn(f"msg {mid} delivery {numbers[0]}: connect to {DEAD}:{port} failed: ", log)
