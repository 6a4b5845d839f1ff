"""Tests for pymta.queue.tap: options, the service tree, and a real `twistd -n pymta-send` child."""

from __future__ import annotations

import os
import signal
import sys

from twisted.application.service import MultiService
from twisted.internet import defer, reactor, utils
from twisted.internet.protocol import ProcessProtocol
from twisted.python import usage
from twisted.trial import unittest

from pymta.queue import tap
from pymta.queue.service import NoDeliveryChannel
from tests.queue.test_scheduler import make_root, queue_message
from tests.queue.test_service import PROJECT, run_ctl, wait_for


class OptionsTests(unittest.SynchronousTestCase):
    def test_root_required_to_hold_a_queue(self) -> None:
        o = tap.Options()
        with self.assertRaises(usage.UsageError) as e:
            o.parseOptions(["--root", self.mktemp()])
        self.assertIn("pymta init", str(e.exception))

    def test_options(self) -> None:
        root, _ = make_root(self)
        o = tap.Options()
        o.parseOptions(["--root", root, "--no-delivery", "--stop-timeout", "5", "--trusted-uid", "101,102"])
        self.assertEqual((o["root"], o["no-delivery"], o["stop-timeout"], o["trusted-uid"]), (root, 1, 5.0, (101, 102)))

    def test_bad_numbers(self) -> None:
        root, _ = make_root(self)
        for args in (["--stop-timeout", "soon"], ["--trusted-uid", "smtpd"]):
            with self.assertRaises(usage.UsageError):
                tap.Options().parseOptions(["--root", root, *args])

    def test_refuses_without_me_and_locals(self) -> None:
        root, _ = make_root(self)
        os.unlink(os.path.join(root, "control", "me"))
        o = tap.Options()
        o.parseOptions(["--root", root, "--no-delivery"])
        with self.assertRaises(SystemExit) as e:
            tap.makeService(o)
        self.assertTrue(str(e.exception).startswith("pymta-send: configuration error, not starting: "), e.exception)
        self.assertIn("control/locals are both missing", str(e.exception))
        with open(os.path.join(root, "control", "locals"), "w") as f:
            f.write("mail.example\n")
        self.assertIsInstance(tap.makeService(o), MultiService)

    def test_make_service_without_delivery(self) -> None:
        root, _ = make_root(self)
        o = tap.Options()
        o.parseOptions(["--root", root, "--no-delivery"])
        service = tap.makeService(o)
        self.assertIsInstance(service, MultiService)
        scheduler = service.getServiceNamed("pymta-send").getServiceNamed("pymta-send-scheduler")
        self.assertIsInstance(scheduler.channels["local"], NoDeliveryChannel)
        self.assertIsInstance(scheduler.channels["remote"], NoDeliveryChannel)


class ConfigurationErrorTests(unittest.SynchronousTestCase):
    """A malformed control file pymta-send reads stops makeService with one line naming file and line."""

    def refused(self, name: str, text: str, lineno: int, reason: str, delivery: bool = True) -> None:
        root, _ = make_root(self, **{name: text})
        o = tap.Options()
        o.parseOptions(["--root", root] + ([] if delivery else ["--no-delivery"]))
        with self.assertRaises(SystemExit) as cm:
            tap.makeService(o)
        message = str(cm.exception)
        self.assertTrue(message.startswith(f"pymta-send: configuration error, not starting: "
                                           f"{root}/control/{name}:{lineno}: "), message)
        self.assertIn(reason, message)
        self.assertNotIn("\n", message)

    def test_smtproutes(self) -> None:
        self.refused("smtproutes", "a.example:relay.example\nb.example:relay.example:99999\n", 2, "bad port '99999'")
        self.refused("smtproutes", "b.example:[127.0.0.1:25]\n", 1, "not an IP address: '[127.0.0.1:25]'")

    def test_tlsdestinations(self) -> None:
        self.refused("tlsdestinations", "# verify\nbank.example\n", 2, "expected domain:")

    def test_queuesync(self) -> None:
        self.refused("queuesync", "sometimes\n", 1, "unknown mode 'sometimes'", delivery=False)


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: defer.Deferred = defer.Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason) -> None:
        self.ended.callback((reason.value.exitCode, reason.value.signal))


class TwistdTests(unittest.TestCase):
    timeout = 60

    async def test_twistd_pymta_send_runs_and_stops_on_sigterm(self) -> None:
        root, layout = make_root(self, short=True)
        mid = queue_message(layout, "a@mail.example", ["bob@mail.example"])
        if os.getuid() == 0:  # as root pymta-send needs a mail account to become: the queue's owner
            for dirpath, _, filenames in os.walk(root):
                for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                    os.lchown(name, 4242, 4242)
        proto = _Collect()
        env = dict(os.environ, PYTHONPATH=PROJECT)
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        args = [sys.executable, "-c", twistd, "-n", "--pidfile=", "--logfile=-",
                "pymta-send", "--root", root, "--no-delivery", "--stop-timeout", "5"]
        process = reactor.spawnProcess(proto, sys.executable, args, env=env, path=PROJECT)
        try:
            await wait_for(lambda: os.path.exists(os.path.join(root, "run", "ctl.sock")), timeout=30)
            await wait_for(lambda: b"delivery 1: deferral: no_local_delivery_channel_is_installed" in proto.output)
            out, err, code = await run_ctl(root, "stat")
            self.assertEqual(code, 0, err)
            self.assertIn(b"status: local 0/10 remote 0/20", out)
        finally:
            if process.pid is not None:
                process.signalProcess("TERM")
            code = await proto.ended
        # twistd ends a SIGTERM-stopped run by re-raising the signal; either way it shut down cleanly
        self.assertIn(code, [(0, None), (None, signal.SIGTERM)], proto.output.decode(errors="replace"))
        self.assertIn("Server Shut Down.", proto.output.decode())
        text = proto.output.decode()
        self.assertIn(f"new msg {mid}", text)
        self.assertIn(f"starting delivery 1: msg {mid} to local bob@mail.example", text)
        self.assertIn("status: exiting", text)
        self.assertTrue(os.path.exists(layout.local(mid)))  # deferred, kept
        self.assertFalse(os.path.exists(os.path.join(root, "run", "pymta-send.pid")))


    async def test_ctl_stop_ends_twistd_pymta_send_cleanly(self) -> None:
        """pymta ctl stop: pymta-send stops as on SIGTERM, exit status 0, and ctl returns once it is gone."""
        root, layout = make_root(self, short=True)
        mid = queue_message(layout, "a@mail.example", ["bob@mail.example"])
        if os.getuid() == 0:
            for dirpath, _, filenames in os.walk(root):
                for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                    os.lchown(name, 4242, 4242)
        proto = _Collect()
        env = dict(os.environ, PYTHONPATH=PROJECT)
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        args = [sys.executable, "-c", twistd, "-n", "--pidfile=", "--logfile=-",
                "pymta-send", "--root", root, "--no-delivery", "--stop-timeout", "5"]
        process = reactor.spawnProcess(proto, sys.executable, args, env=env, path=PROJECT)
        pid = process.pid
        try:
            await wait_for(lambda: b"delivery 1: deferral: no_local_delivery_channel_is_installed" in proto.output,
                           timeout=30)
            out, err, code = await run_ctl(root, "stop")
            self.assertEqual(code, 0, err)
            self.assertEqual(out.decode(), f"pymta-send is stopping\npymta-send (pid {pid}) has stopped\n")
            self.assertIsNone(process.pid)  # reaped: the process had ended when ctl returned
        finally:
            if process.pid is not None:
                process.signalProcess("KILL")
        self.assertEqual(await proto.ended, (0, None), proto.output.decode(errors="replace"))
        text = proto.output.decode()
        self.assertIn("status: exiting", text)
        self.assertIn("Server Shut Down.", text)
        self.assertTrue(os.path.exists(layout.local(mid)))
        self.assertFalse(os.path.exists(os.path.join(root, "run", "pymta-send.pid")))

    async def test_twistd_pymta_send_refuses_a_bad_smtproutes_line(self) -> None:
        # the case: it used to start, then defer every delivery to that domain naming no file
        for line, reason in (("b.example:relay.example:notaport",
                              "bad port 'notaport' (expected 1 to 65535)"),
                             ("b.example:[256.1.1.1]", "not an IP address: '[256.1.1.1]'")):
            root, _ = make_root(self, short=True, smtproutes=f"a.example:relay.example:2525\n{line}\n")
            proto = _Collect()
            env = dict(os.environ, PYTHONPATH=PROJECT)
            twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
            args = [sys.executable, "-c", twistd, "-n", "--pidfile=", "--logfile=-", "pymta-send", "--root", root]
            reactor.spawnProcess(proto, sys.executable, args, env=env, path=PROJECT, childFDs={1: "r", 2: "r"})
            code, _ = await proto.ended
            text = proto.output.decode(errors="replace")
            self.assertNotEqual(code, 0, text)
            self.assertEqual(text, f"pymta-send: configuration error, not starting: {root}/control/smtproutes:2: "
                                   f"{reason}\n")
            self.assertFalse(os.path.exists(os.path.join(root, "run", "ctl.sock")))


class EndToEndTests(unittest.TestCase):
    """`pymta inject` -> twistd pymta-send with the real channels -> Maildir, bounce, queue empty."""

    timeout = 90

    async def test_inject_deliver_bounce_remove(self) -> None:
        import shutil
        import tempfile

        base = tempfile.mkdtemp(prefix="pymta-e2e-")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)
        root = os.path.join(base, "root")
        env = dict(os.environ, PYTHONPATH=PROJECT, PYMTA_ROOT=root)
        init = ["init", root, "--me", "mail.example", "--user", "alice"]
        twistd_uid: list[str] = []
        if os.getuid() == 0:
            init += ["--mail-uid", "65534:65534"]
            twistd_uid = ["--uid", "65534", "--gid", "65534"]
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-m", "pymta.cli.main", *init], env=env, path=PROJECT
        )
        self.assertEqual(code, 0, err)

        proto = _Collect()
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        args = [sys.executable, "-c", twistd, "-n", "--pidfile=", "--logfile=-", *twistd_uid,
                "pymta-send", "--root", root, "--stop-timeout", "5"]
        process = reactor.spawnProcess(proto, sys.executable, args, env=env, path=PROJECT)
        maildir = os.path.join(root, "home", "alice", "Maildir", "new")
        try:
            await wait_for(lambda: os.path.exists(os.path.join(root, "run", "inject.sock")), timeout=30)
            for rcpt, body in (("alice", b"Subject: hi\n\nhello alice\n"), ("nosuch@mail.example", b"Subject: x\n\nbounce me\n")):
                out, err, code = await utils.getProcessOutputAndValue(
                    sys.executable, ["-m", "pymta.cli.main", "inject", "-f", "alice@mail.example", rcpt],
                    env=env, path=PROJECT, stdinBytes=body,
                )
                self.assertEqual(code, 0, err)
            await wait_for(lambda: os.path.isdir(maildir) and len(os.listdir(maildir)) == 2, timeout=30)
            await wait_for(lambda: proto.output.count(b"end msg") == 3, timeout=10)
        finally:
            if process.pid is not None:
                process.signalProcess("TERM")
            await proto.ended
        text = proto.output.decode(errors="replace")
        self.assertRegex(text, r"delivery \d+: failure: Sorry,_no_mailbox_here_by_that_name\._\(#5\.1\.1\)")
        self.assertRegex(text, r"bounce msg \d+ qp \d+")
        messages = []
        for name in os.listdir(maildir):
            with open(os.path.join(maildir, name), "rb") as f:
                messages.append(f.read())
        bounce = [m for m in messages if b"Subject: failure notice" in m]
        self.assertEqual(len(bounce), 1)
        self.assertIn(b"<nosuch@mail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
                      b"--- Below this line is a copy of the message.\n\nReturn-Path: <alice@mail.example>\n", bounce[0])
        leftovers = [f for d in ("todo", "info", "local", "remote", "bounce", "mess")
                     for _, _, files in os.walk(os.path.join(root, "queue", d)) for f in files]
        self.assertEqual(leftovers, [])
