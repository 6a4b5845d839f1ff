"""
Real pymta daemons with C{--metrics} for the metrics tests (child
processes of twistd on free loopback ports), and scraping helpers.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Callable

from tests.packages import ensure_program
from tests.waiting import wait_until

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

__all__ = ["free_port", "new_root", "Daemon", "scrape", "sample", "samples", "promtool", "metric_names"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_root(cleanups: Callable, me: str = "test.example") -> tuple[str, tuple[int, int] | None]:
    """A fresh pymta root with user alice (password secret); the mail uid when running as root."""
    base = tempfile.mkdtemp(prefix="pymta-metrics-")
    os.chmod(base, 0o755)
    cleanups(shutil.rmtree, base, True)
    root = os.path.join(base, "root")
    init = [root, "--me", me, "--user", "alice:secret"]
    owner = None
    if os.getuid() == 0:
        init += ["--mail-uid", "4242:4242"]
        owner = (4242, 4242)
    subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                   stdout=subprocess.DEVNULL)
    return root, owner


class Daemon:
    """One C{twistd -n PLUGIN ARGS} child with its log in ROOT/NAME.log."""

    def __init__(self, root: str, plugin: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = os.path.join(root, f"{plugin}.log")
        command = [TWISTD, "-n", "--pidfile=", f"--logfile={self.log}", plugin, "--root", root, *args]
        self.proc = subprocess.Popen(command, cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_listening(self, *ports: int, timeout: float = 60) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"twistd exited early:\n{self.log_text()[-3000:]}")
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
            except OSError:
                return False
            return True

        if not wait_until(up, timeout):
            raise AssertionError(f"not listening on {ports}:\n{self.log_text()[-3000:]}")


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    """The status and text of C{GET path} on 127.0.0.1:C{port}."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def samples(text: str) -> dict[str, float]:
    """Every sample of a scrape: C{'name{labels}'} to its value."""
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match[1] + (match[2] or "")] = float(match[3])
    return out


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of C{name}'s samples whose labels include C{labels} (0 when there are none)."""
    total = 0.0
    for key, value in samples(text).items():
        metric, _, rest = key.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            total += value
    return total


def metric_names(text: str) -> set[str]:
    return {key.partition("{")[0] for key in samples(text)}


def promtool() -> str | None:
    """promtool's path, installing Debian's prometheus package if need be; None when it cannot be had."""
    return ensure_program("promtool", "prometheus")


def promtool_check(path: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([path, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
