"""
The metrics of real daemons: C{twistd pymta-send}, C{pymta-smtpd} and
C{pymta-pop3d}, each with C{--metrics}, then C{twistd pymta} alone.  The
counters match what was sent, the queue empties, every scrape passes
C{promtool check metrics} (Debian's prometheus package) and C{/healthz}
says ok.
"""

from __future__ import annotations

import json
import os
import poplib
import re
import smtplib
import socket
import subprocess
import sys

from twisted.trial import unittest

from tests.metrics.daemons import (
    SRC, Daemon, free_port, metric_names, new_root, promtool, promtool_check, sample, scrape,
)
from tests.waiting import wait_until

DASHBOARD = os.path.join(SRC, "docs", "grafana", "pymta.json")

ACCEPTED, REFUSED = 4, 3


def dashboard_metric_names() -> set[str]:
    """Every metric name the Grafana dashboard's expressions use."""
    with open(DASHBOARD) as f:
        board = json.load(f)
    names = set()
    functions = {"sum", "rate", "increase", "histogram_quantile", "by", "le", "max", "min", "without", "irate",
                 "topk", "avg", "count", "clamp_min", "time", "on", "ignoring"}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(by|without) \([^)]*\)', "", target["expr"])
            for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
                if word not in functions and not word.isdigit():
                    names.add(word)
    return names


class MetricsAcceptanceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.promtool = promtool()

    def check_with_promtool(self, text: str, daemon: str) -> None:
        if self.promtool is None:
            return
        done = promtool_check(self.promtool, text)
        self.assertEqual(done.returncode, 0, f"promtool check metrics on {daemon}: {done.stdout!r} {done.stderr!r}")

    def start(self, root: str, plugin: str, *args: str, ports: tuple[int, ...],
              env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(root, plugin, *args, env=env)
        self.addCleanup(daemon.stop)
        daemon.wait_listening(*ports)
        return daemon

    def test_separate_daemons(self) -> None:
        if self.promtool is None:
            raise unittest.SkipTest("promtool (Debian's prometheus package) cannot be had here")
        root, _ = new_root(self.addCleanup)
        with open(os.path.join(root, "control", "badmailfrom"), "w") as f:
            f.write("spammer@bad.example\n")
        smtp, pop3 = free_port(), free_port()
        m_send, m_smtpd, m_pop3 = free_port(), free_port(), free_port()
        send = self.start(root, "pymta-send", "--metrics", f"tcp:{m_send}:interface=127.0.0.1", ports=(m_send,))
        self.start(root, "pymta-smtpd", "--listen", f"tcp:{smtp}:interface=127.0.0.1",
                   "--metrics", f"tcp:{m_smtpd}:interface=127.0.0.1", ports=(smtp, m_smtpd))
        self.start(root, "pymta-pop3d", "--listen", f"tcp:{pop3}:interface=127.0.0.1", "--allow-plaintext-auth",
                   "--failure-delay", "0", "--metrics", f"tcp:{m_pop3}:interface=127.0.0.1", ports=(pop3, m_pop3))

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            for n in range(ACCEPTED):
                client.sendmail("sender@remote.example", ["alice@test.example"], f"Subject: {n}\r\n\r\nbody {n}\r\n")
            for n in range(REFUSED):
                with self.assertRaises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("spammer@bad.example", ["alice@test.example"], "Subject: no\r\n\r\nno\r\n")

        def delivered() -> bool:
            text = scrape(m_send)[1]
            return (sample(text, "pymta_deliveries_total", channel="local", result="success") == ACCEPTED
                    and sample(text, "pymta_queue_messages") == 0)

        self.assertTrue(wait_until(delivered, 60), "deliveries never reached the count:\n" + send.log_text()[-3000:])

        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.user("alice")
        with self.assertRaises(poplib.error_proto):
            pop.pass_("wrong")
        pop.quit()
        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.user("alice")
        pop.pass_("secret")
        self.assertEqual(pop.stat()[0], ACCEPTED)
        pop.quit()

        scrapes = {name: scrape(port) for name, port in (("send", m_send), ("smtpd", m_smtpd), ("pop3d", m_pop3))}
        for name, (status, text) in scrapes.items():
            self.assertEqual(status, 200, name)
            self.check_with_promtool(text, name)
            self.assertEqual(scrape({"send": m_send, "smtpd": m_smtpd, "pop3d": m_pop3}[name], "/healthz"), (200, "ok\n"))

        smtpd = scrapes["smtpd"][1]
        self.assertEqual(sample(smtpd, "pymta_smtpd_messages_accepted_total"), ACCEPTED)
        self.assertEqual(sample(smtpd, "pymta_smtpd_refusals_total", reason="badmailfrom"), REFUSED)
        self.assertEqual(sample(smtpd, "pymta_smtpd_refusals_total"), REFUSED)
        self.assertGreaterEqual(sample(smtpd, "pymta_sessions_total", service="smtpd"), 1)

        sent = scrapes["send"][1]
        self.assertEqual(sample(sent, "pymta_deliveries_total"), ACCEPTED)
        self.assertEqual(sample(sent, "pymta_delivery_latency_seconds_count", channel="local"), ACCEPTED)
        self.assertEqual(sample(sent, "pymta_messages_completed_total"), ACCEPTED)
        self.assertEqual(sample(sent, "pymta_queue_messages"), 0)
        self.assertEqual(sample(sent, "pymta_channel_concurrency_limit", channel="local"), 10)
        self.assertEqual(sample(sent, "pymta_remote_hosts_dead"), 0)

        popped = scrapes["pop3d"][1]
        self.assertEqual(sample(popped, "pymta_login_failures_total", service="pop3d"), 1)
        self.assertGreaterEqual(sample(popped, "pymta_sessions_total", service="pop3d"), 2)
        self.assertEqual(sample(popped, "pymta_tls_sessions_total", service="pop3d"), 0)

        # the health checks a probe runs: ok while serving, 111 and one line once pymta-send is gone
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "cwd": SRC}
        pymta = [sys.executable, "-m", "pymta.cli.main"]
        for argv in (["health", "smtp", f"127.0.0.1:{smtp}"], ["health", "pop3", f"tcp:127.0.0.1:{pop3}"],
                     ["health", "http", f"http://127.0.0.1:{m_smtpd}/healthz"], ["ctl", "--root", root, "health"]):
            self.assertEqual(subprocess.run(pymta + argv, **quiet).returncode, 0, argv)  # type: ignore[call-overload]
        send.stop()
        down = subprocess.run(pymta + ["ctl", "--root", root, "health"], **quiet)  # type: ignore[call-overload]
        self.assertEqual(down.returncode, 111)
        self.assertIn(b"pymta-send is not serving", down.stderr)

        # every metric the Grafana dashboard draws is in one of these scrapes
        scraped = set().union(*(metric_names(text) for _, text in scrapes.values()))
        self.assertEqual(dashboard_metric_names() - scraped, set())

    def test_all_in_one(self) -> None:
        root, _ = new_root(self.addCleanup)
        # what systemd would hear: the daemon drops to the mail uid before it speaks
        notify_path = os.path.join(os.path.dirname(root), "notify")
        systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(systemd.close)
        systemd.bind(notify_path)
        os.chmod(notify_path, 0o777)
        systemd.settimeout(30)
        smtp, pop3, metrics = free_port(), free_port(), free_port()
        daemon = self.start(root, "pymta", "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                            "--pop3", f"tcp:{pop3}:interface=127.0.0.1", "--metrics", f"tcp:{metrics}:interface=127.0.0.1",
                            ports=(smtp, pop3, metrics), env={"NOTIFY_SOCKET": notify_path})
        self.assertEqual(systemd.recv(4096).decode(), f"READY=1\nMAINPID={daemon.proc.pid}")
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("sender@remote.example", ["alice@test.example"], "Subject: one\r\n\r\nbody\r\n")

        def delivered() -> bool:
            return sample(scrape(metrics)[1], "pymta_deliveries_total", result="success") == 1

        self.assertTrue(wait_until(delivered, 60))
        status, text = scrape(metrics)
        self.assertEqual(status, 200)
        self.check_with_promtool(text, "pymta")
        self.assertEqual(sample(text, "pymta_smtpd_messages_accepted_total"), 1)
        self.assertGreaterEqual(sample(text, "pymta_sessions_total", service="smtpd"), 1)
        self.assertIn("pymta_sessions_total", metric_names(text))
        self.assertEqual(scrape(metrics, "/healthz"), (200, "ok\n"))
        self.assertEqual(scrape(metrics, "/nothing")[0], 404)
        daemon.stop()
        self.assertEqual(systemd.recv(4096).decode(), "STOPPING=1")
