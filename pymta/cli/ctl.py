# -*- test-case-name: tests.cli.test_ctl -*-
"""
C{pymta ctl [--root DIR] COMMAND [ARGS]}: drive a running pymta-send.

The commands and their help are L{pymta.queue.ctlrequest.COMMANDS}, plus
C{tcpok} (forget every remote host marked dead, like qmail-tcpok; no daemon
needed) and C{health} (exit 0 when pymta-send answers, 111 with the reason
when not).  The queue actions take a selection::

  pymta ctl delete|hold|release|retry|bounce [ID...] [--domain D] [--sender S]
      [--recipient R] [--older-than AGE] [--reason TEXT] [--dry-run]

checked here first (a malformed one is a usage error), then sent as one
request line (L{pymta.queue.ctlrequest.CtlRequest}) over
C{ROOT/run/ctl.sock}; without the socket, C{doqueue}, C{flush},
C{reload} and C{stop} fall back to signals to the pid in
C{ROOT/run/pymta-send.pid}.  C{stop} waits until pymta-send's process is
gone.

Exit codes: 0 done (also "no message matched"), 100 usage error, 111
pymta-send not running or the command failed (temporary trouble, as in
qmail).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

from pymta.control import default_root
from pymta.queue.ctlrequest import COMMANDS, QUEUE_ACTIONS, CtlRequest, parse_selection

__all__ = ["main", "EXIT_OK", "EXIT_USAGE", "EXIT_TEMP"]

EXIT_OK = 0
EXIT_USAGE = 100
EXIT_TEMP = 111

SOCKET_COMMANDS = tuple(COMMANDS)
SIGNALS = {"doqueue": signal.SIGALRM, "flush": signal.SIGALRM, "reload": signal.SIGHUP, "stop": signal.SIGTERM}
#: how long C{stop} waits for pymta-send to be gone (its own stop timeout is 60 s by default)
STOP_WAIT = 120.0


def _ask(path: str, command: str, timeout: float = 30.0, args: tuple[str, ...] = ()) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(CtlRequest(command, args).encode())
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


def _pid_in(pidfile: str) -> int | None:
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: it exists
    return True


def _wait_stopped(pid: int | None) -> int:
    """
    Wait until process C{pid} is gone: pymta-send removes its pid file as
    it I{starts} to stop, before its deliveries have drained.
    """
    if pid is None:
        return EXIT_OK
    timeout = STOP_WAIT
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            sys.stderr.write(f"pymta ctl: pymta-send (pid {pid}) is still stopping after {int(timeout)} s\n")
            return EXIT_TEMP
        time.sleep(0.05)
    sys.stdout.write(f"pymta-send (pid {pid}) has stopped\n")
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


def _arguments(command: str, words: list[str]) -> tuple[str, ...]:
    """The request's arguments (L{ValueError} when malformed); tabs in a reason become spaces."""
    if command not in QUEUE_ACTIONS:
        if words:
            raise ValueError(f"{command} takes no arguments")
        return ()
    parse_selection(command, words)
    args = tuple(w.replace("\t", " ") for w in words)
    CtlRequest(command, args).encode()  # within bounds
    return args


def main(argv: list[str]) -> int:
    epilog = "\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="pymta ctl", description="control a running pymta-send", formatter_class=argparse.RawTextHelpFormatter,
        epilog=epilog + "\n  tcpok    forget every remote host marked dead (qmail-tcpok)"
        "\n  health   exit 0 when pymta-send answers, 111 with the reason when not\n\nqueue actions take: "
        "[ID...] [--domain D] [--sender S] [--recipient R] [--older-than AGE] [--reason TEXT] [--dry-run]")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    parser.add_argument("command", choices=SOCKET_COMMANDS + ("tcpok", "health"))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    root = os.path.abspath(args.root or default_root())
    if args.command == "tcpok":
        return _tcpok(root) if not args.args else EXIT_USAGE
    if args.command == "health":
        if args.args:
            return EXIT_USAGE
        from pymta.cli.health import report, send_health

        return report(send_health(root, 10.0), f"pymta-send of {root} is serving")
    try:
        request_args = _arguments(args.command, args.args)
    except ValueError as e:
        sys.stderr.write(f"pymta ctl {args.command}: {e}\n")
        return EXIT_USAGE
    path = os.path.join(root, "run", "ctl.sock")
    pidfile = os.path.join(root, "run", "pymta-send.pid")
    running = _pid_in(pidfile) if args.command == "stop" else None
    try:
        reply = _ask(path, args.command, args=request_args)
    except PermissionError:
        sys.stderr.write(f"pymta ctl: permission denied on {path}: run it as root or as the queue's owner\n")
        return EXIT_TEMP
    except OSError as e:
        if args.command in SIGNALS:
            status = _signal(root, args.command)
            if args.command == "stop" and status == EXIT_OK:
                return _wait_stopped(running)
            return status
        sys.stderr.write(f"pymta ctl: pymta-send is not running ({path}: {e.strerror or e})\n")
        return EXIT_TEMP
    first, _, rest = reply.partition("\n")
    sys.stdout.write(rest)
    if first != "ok":
        sys.stderr.write(f"pymta ctl: {first or 'no answer from pymta-send'}\n")
        return EXIT_TEMP
    if args.command == "stop":
        sys.stdout.flush()
        return _wait_stopped(running)
    return EXIT_OK
