# -*- test-case-name: tests.cli.test_ctl -*-
"""
C{pymta ctl [--root DIR] COMMAND}: drive a running pymta-send.

  stat      the status line and queue counters
  doqueue   retry every queued message now (like SIGALRM to qmail-send)
  reload    reread the control files (like SIGHUP)
  pause     start no new deliveries
  cont      continue after pause
  queue     every queued job and its next attempt
  tcpok     forget every remote host marked dead (qmail-tcpok)
  health    exit 0 when pymta-send answers, 111 with the reason when not

Commands go over C{ROOT/run/ctl.sock}; without the socket, C{doqueue} and
C{reload} fall back to signals to the pid in C{ROOT/run/pymta-send.pid}.

Exit codes: 0 done, 100 usage error, 111 pymta-send not running or the
command failed (temporary trouble, as in qmail).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from pymta.control import default_root

__all__ = ["main", "EXIT_OK", "EXIT_USAGE", "EXIT_TEMP"]

EXIT_OK = 0
EXIT_USAGE = 100
EXIT_TEMP = 111

SOCKET_COMMANDS = ("stat", "doqueue", "reload", "pause", "cont", "queue")
SIGNALS = {"doqueue": signal.SIGALRM, "reload": signal.SIGHUP}


def _ask(path: str, command: str, timeout: float = 30.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def _signal(root: str, command: str) -> int:
    pidfile = os.path.join(root, "run", "pymta-send.pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, SIGNALS[command])
    except (OSError, ValueError) as e:
        sys.stderr.write(f"pymta ctl: pymta-send is not running ({pidfile}: {e})\n")
        return EXIT_TEMP
    sys.stdout.write(f"signalled pymta-send (pid {pid})\n")
    return EXIT_OK


def _tcpok(root: str) -> int:
    try:
        from pymta.remote.tcpto import clear
    except ImportError:
        sys.stderr.write("pymta ctl: tcpok: remote delivery is not installed\n")
        return EXIT_TEMP
    try:
        clear(root)
    except OSError as e:
        sys.stderr.write(f"pymta ctl: tcpok: {e}\n")
        return EXIT_TEMP
    return EXIT_OK


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta ctl", description="control a running pymta-send")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    parser.add_argument("command", choices=SOCKET_COMMANDS + ("tcpok", "health"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    root = os.path.abspath(args.root or default_root())
    if args.command == "tcpok":
        return _tcpok(root)
    if args.command == "health":
        from pymta.cli.health import report, send_health

        return report(send_health(root, 10.0), f"pymta-send of {root} is serving")
    path = os.path.join(root, "run", "ctl.sock")
    try:
        reply = _ask(path, args.command)
    except PermissionError:
        sys.stderr.write(f"pymta ctl: permission denied on {path}: run it as root or as the queue's owner\n")
        return EXIT_TEMP
    except OSError as e:
        if args.command in SIGNALS:
            return _signal(root, args.command)
        sys.stderr.write(f"pymta ctl: pymta-send is not running ({path}: {e.strerror or e})\n")
        return EXIT_TEMP
    first, _, rest = reply.partition("\n")
    sys.stdout.write(rest)
    if first != "ok":
        sys.stderr.write(f"pymta ctl: {first or 'no answer from pymta-send'}\n")
        return EXIT_TEMP
    return EXIT_OK
