"""
pymta.gctuning: a started daemon's start-up heap frozen, once per process,
with Python's thresholds left alone; RootDroppingService does it for a daemon
run by twistd and never for a service a test starts.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from types import SimpleNamespace

from twisted.application import service
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pymta import gctuning, privileges


class TuneDaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(gctuning, "_tuned", False)
        self.addCleanup(gc.set_threshold, *gc.get_threshold())
        self.addCleanup(gc.unfreeze)
        gc.set_threshold(700, 10, 10)  # CPython's defaults

    def test_freezes_the_heap(self) -> None:
        before: list[object] = []  # a container made before the call: frozen
        self.assertTrue(gctuning.tune_daemon())
        self.assertGreater(gc.get_freeze_count(), 0)
        self.assertFalse(any(o is before for o in gc.get_objects()))  # no generation holds a frozen object
        after: list[object] = []  # what comes later is collected as before
        self.assertTrue(any(o is after for o in gc.get_objects(generation=0)))
        self.assertEqual(gc.get_threshold(), (700, 10, 10))

    def test_once_per_process(self) -> None:
        calls: list[str] = []
        real_freeze, real_collect = gc.freeze, gc.collect

        def freeze() -> None:
            calls.append("freeze")
            real_freeze()

        def collect(*args: int) -> int:
            calls.append("collect")
            return real_collect(*args)

        self.patch(gc, "freeze", freeze)
        self.patch(gc, "collect", collect)
        self.assertTrue(gctuning.tune_daemon())
        gc.set_threshold(700, 10, 10)
        self.assertFalse(gctuning.tune_daemon())
        self.assertEqual(calls, ["collect", "freeze"])  # garbage collected before the heap is frozen
        self.assertEqual(gc.get_threshold(), (700, 10, 10))

    def test_keeps_the_thresholds(self) -> None:
        gc.set_threshold(5000, 20, 30)
        gctuning.tune_daemon()
        self.assertEqual(gc.get_threshold(), (5000, 20, 30))


class RootDroppingServiceTests(SynchronousTestCase):
    class Options(dict):  # what use_twistd_options reads of twistd's ServerOptions
        subCommand = "pymta-smtpd"

    def setUp(self) -> None:
        self.tuned: list[bool] = []
        self.patch(gctuning, "tune_daemon", lambda: self.tuned.append(True) or True)
        self.patch(privileges, "drop_root", lambda root: None)  # a test process stays what it is

    def test_a_twistd_daemon_is_tuned_once_started(self) -> None:
        service = privileges.RootDroppingService(self.mktemp())
        service.use_twistd_options(self.Options(uid=65534, gid=65534, nodaemon=True, logfile="-"))
        self.assertEqual(self.tuned, [])
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(self.tuned, [True])

    def test_a_tac_daemon_is_tuned_once_started(self) -> None:
        """A .tac file (pymta deploy) gives no twistd options; pymta/deploy/tac/_common.py marks the daemon."""
        path = os.path.join(os.path.dirname(gctuning.__file__), "deploy", "tac", "_common.py")
        spec = importlib.util.spec_from_file_location("tac_common", path)
        assert spec is not None and spec.loader is not None
        common = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(common)

        class Options(usage.Options):
            optParameters = [["root", None, self.mktemp(), ""]]

        self.patch(privileges, "refuse_root_without_account", lambda root, program: None)
        tap = SimpleNamespace(Options=Options, makeService=lambda options: service.MultiService())
        app = service.Application("pymta-smtpd")
        common.attach(app, tap, [])
        top = list(service.IServiceCollection(app))[0]
        top.startService()
        self.addCleanup(top.stopService)
        self.assertEqual(self.tuned, [True])

    def test_a_service_without_twistd_is_not(self) -> None:
        service = privileges.RootDroppingService(self.mktemp())
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(self.tuned, [])
