"""Tests for pymta.tap (twistd pymta) and the .tac files in pymta/deploy/tac/."""

from __future__ import annotations

import os
import runpy
import shutil
import tempfile

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection
from twisted.python import usage
from twisted.trial import unittest

from pymta import tap
from pymta.cli import init as init_command
from pymta.privileges import PrivilegeError, drop_root

HERE = os.path.dirname(os.path.abspath(__file__))
TAP_CONFIGS = os.path.join(os.path.dirname(HERE), "pymta", "deploy", "tac")


def make_root(test: unittest.SynchronousTestCase) -> str:
    base = tempfile.mkdtemp(prefix="pymta-tap-")
    test.addCleanup(shutil.rmtree, base, True)
    os.chmod(base, 0o755)  # the mail uid must reach the root
    root = os.path.join(base, "root")
    argv = [root, "--me", "tap.example", "--user", "alice:pw"]
    if os.getuid() == 0:
        argv += ["--mail-uid", "4242:4242"]
    test.assertEqual(init_command.main(argv), 0)
    return root


def names(service: IService) -> list[str]:
    return [child.name or type(child).__name__ for child in IServiceCollection(service)]


def options_for(root: str) -> tap.Options:
    """Options for C{twistd pymta} parsed on their own (not as a twistd subcommand)."""
    options = tap.Options()
    options.parseOptions(["--root", root, "--pop3", "tcp:0:interface=127.0.0.1", "--no-delivery"])
    return options


class OptionsTests(unittest.SynchronousTestCase):
    def test_requires_a_listener(self) -> None:
        root = make_root(self)
        options = tap.Options()
        e = self.assertRaises(usage.UsageError, options.parseOptions, ["--root", root])
        self.assertIn("--smtp", str(e))

    def test_missing_queue(self) -> None:
        options = tap.Options()
        e = self.assertRaises(usage.UsageError, options.parseOptions,
                              ["--root", self.mktemp(), "--smtp", "tcp:0"])
        self.assertIn("pymta init", str(e))

    def test_root_made_absolute_and_stop_timeout_parsed(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", os.path.relpath(root), "--pop3", "tcp:0", "--stop-timeout", "7"])
        self.assertEqual((options["root"], options["stop-timeout"]), (os.path.abspath(root), 7.0))
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                              ["--root", root, "--pop3", "tcp:0", "--stop-timeout", "soon"])
        self.assertIn("--stop-timeout needs a number of seconds", str(e))

    def test_repeatable_endpoints(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--smtp", "tcp:0", "--smtp", "tcp6:0",
                              "--submission", "tcp:0", "--pop3", "tcp:0"])
        self.assertEqual(options["smtp"], ["tcp:0", "tcp6:0"])
        self.assertEqual(options["pop3"], ["tcp:0"])

    def test_bad_endpoint_is_a_usage_error_naming_it(self) -> None:
        root = make_root(self)
        for option in ("--smtp", "--submission", "--pop3"):
            e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--root", root, option, "tcp:abc"])
            self.assertIn("bad endpoint 'tcp:abc'", str(e))

    def test_make_service_has_all_three(self) -> None:
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--smtp", "tcp:0:interface=127.0.0.1",
                              "--pop3", "tcp:0:interface=127.0.0.1", "--no-delivery"])
        service = tap.makeService(options)
        children = list(IServiceCollection(service))
        self.assertEqual(len(children), 3)
        self.assertEqual(children[0].name, "pymta-send")

    def test_every_plugin_under_twistd_logs_through_the_fast_observer(self) -> None:
        """Run as a twistd subcommand, each plugin gives twistd pymta's observer for C{--nodaemon}."""
        from twisted.scripts.twistd import ServerOptions

        from pymta.twistdlog import ClassicLogFormat

        root = make_root(self)
        for argv in (["pymta", "--root", root, "--smtp", "tcp:0:interface=127.0.0.1", "--no-delivery"],
                     ["pymta-send", "--root", root, "--no-delivery"],
                     ["pymta-smtpd", "--root", root, "--listen", "tcp:0:interface=127.0.0.1"],
                     ["pymta-pop3d", "--root", root, "--listen", "tcp:0:interface=127.0.0.1"]):
            with self.subTest(plugin=argv[0]):
                config = ServerOptions()
                config.parseOptions(["--nodaemon"] + argv)
                service = config.loadedPlugins[config.subCommand].makeService(config.subOptions)
                self.assertIsInstance(service.log_observer.formatEvent, ClassicLogFormat)
                self.assertIsNone(tap.makeService(options_for(root)).log_observer)

    def test_reload_reaches_smtpd_and_pop3d(self) -> None:
        """A control reload (SIGHUP) refreshes smtpd's access rules."""
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--smtp", "tcp:0:interface=127.0.0.1",
                              "--pop3", "tcp:0:interface=127.0.0.1", "--no-delivery"])
        service = tap.makeService(options)
        smtpd = list(IServiceCollection(service))[1]
        before = smtpd.context.rules
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write("10.:deny\n:allow\n")
        smtpd.context.reader.reload()
        self.assertIsNot(smtpd.context.rules, before)

    def test_pop3_connection_limits_read_at_start_and_reload(self) -> None:
        root = make_root(self)
        with open(os.path.join(root, "control", "concurrencypop3"), "w") as f:
            f.write("7\n")
        service = tap.makeService(options_for(root))
        pop3 = [child for child in IServiceCollection(service) if hasattr(child, "settings")][0]
        self.assertEqual((pop3.settings.max_connections, pop3.settings.max_connections_per_address), (7, 10))
        with open(os.path.join(root, "control", "concurrencypop3perip"), "w") as f:
            f.write("2\n")
        pop3.reader.reload()
        self.assertEqual((pop3.settings.max_connections, pop3.settings.max_connections_per_address), (7, 2))

    def test_smtpd_and_pop3d_share_one_login_limiter(self) -> None:
        """One budget of failed logins for SMTP AUTH and POP3; a reload applies new budgets to it."""
        root = make_root(self)
        options = tap.Options()
        options.parseOptions(["--root", root, "--submission", "tcp:0:interface=127.0.0.1",
                              "--pop3", "tcp:0:interface=127.0.0.1", "--no-delivery"])
        service = tap.makeService(options)
        smtpd, pop3d = list(IServiceCollection(service))[1:]
        limiter = smtpd.context.auth_limiter
        self.assertIs(pop3d.settings.limiter, limiter)
        self.assertEqual(limiter.limits.per_address, 10)
        with open(os.path.join(root, "control", "authfailuresperip"), "w") as f:
            f.write("4\n")
        smtpd.context.reader.reload()
        self.assertEqual(limiter.limits.per_address, 4)


class ConfigurationErrorTests(unittest.SynchronousTestCase):
    """twistd pymta stops on a malformed file of any of its parts with one line naming file and line."""

    def test_one_line_per_part(self) -> None:
        root = make_root(self)
        for name, text, reason in (
            ("smtproutes", "x.example:relay.example:99999\n", "bad port '99999'"),
            ("tlsdestinations", "x.example\n", "expected domain:"),
            ("rbls", "zen.example:perm\n", "expected zone"),
        ):
            path = os.path.join(root, "control", name)
            with open(path, "w") as f:
                f.write(text)
            options = tap.Options()
            options.parseOptions(["--root", root, "--smtp", "tcp:0:interface=127.0.0.1"])
            with self.assertRaises(SystemExit) as cm:
                tap.makeService(options)
            self.assertTrue(str(cm.exception).startswith(f"pymta: configuration error, not starting: {path}:1: "),
                            str(cm.exception))
            self.assertIn(reason, str(cm.exception))
            os.unlink(path)
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write("127.0.0.1 :deny\n:allow\n")
        with self.assertRaises(SystemExit) as cm:
            tap.makeService(options)
        self.assertEqual(str(cm.exception), f"pymta: configuration error, not starting: {root}/etc/tcp.smtp:1: "
                                            "blank in the address '127.0.0.1 ': 127.0.0.1 :deny")


class TacFileTests(unittest.SynchronousTestCase):
    """Every .tac in pymta/deploy/tac/ builds its application (nothing is started or bound)."""

    def load(self, name: str, root: str, **overrides: str) -> IService:
        env = {"PYMTA_ROOT": root, "PYMTA_SMTP": "tcp:0:interface=127.0.0.1",
               "PYMTA_SUBMISSION": "tcp:0:interface=127.0.0.1", "PYMTA_POP3": "tcp:0:interface=127.0.0.1"}
        env.update(overrides)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            namespace = runpy.run_path(os.path.join(TAP_CONFIGS, name))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return IService(namespace["application"])

    def test_every_tac(self) -> None:
        root = make_root(self)
        tacs = sorted(n for n in os.listdir(TAP_CONFIGS) if n.endswith(".tac"))
        self.assertEqual(tacs, ["pop3d.tac", "pymta.tac", "send.tac", "smtpd.tac"])
        for name in tacs:
            service = self.load(name, root)
            self.assertTrue(list(IServiceCollection(service)), name)

    def test_empty_variable_disables_a_listener(self) -> None:
        root = make_root(self)
        top = list(IServiceCollection(self.load("pymta.tac", root, PYMTA_SUBMISSION="", PYMTA_POP3="")))[0]
        self.assertEqual(names(top), ["pymta-send", "SMTPDService"])
        smtpd = list(IServiceCollection(top))[1]
        listeners = [s for s in IServiceCollection(smtpd) if isinstance(s, StreamServerEndpointService)]
        self.assertEqual(len(listeners), 1)  # the SMTP listener alone


class PrivilegeTests(unittest.SynchronousTestCase):
    def test_not_root_does_nothing(self) -> None:
        if os.getuid() == 0:
            raise unittest.SkipTest("needs a non-root process")
        self.assertIsNone(drop_root(self.mktemp()))

    def test_root_owned_queue_refused(self) -> None:
        if os.getuid() != 0:
            raise unittest.SkipTest("needs root")
        root = self.mktemp()
        os.makedirs(os.path.join(root, "queue"))
        e = self.assertRaises(PrivilegeError, drop_root, root)
        self.assertIn("owned by root", str(e))
