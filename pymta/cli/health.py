# -*- test-case-name: tests.cli.test_health -*-
"""
C{pymta health WHAT}: is a daemon serving?  One line on standard output
(C{ok}) or standard error (why not); exit 0 when it serves, 111 when not
(qmail's temporary failure), 100 for a usage error.

  send [--root DIR]          pymta-send answers C{stat} on ROOT/run/ctl.sock
                             (also C{pymta ctl health})
  smtp ENDPOINT              an SMTP server greets with 220 (pymta-smtpd)
  pop3 ENDPOINT              a POP3 server greets with +OK (pymta-pop3d)
  http URL                   a C{--metrics} listener's C{/healthz} answers 200

ENDPOINT is HOST:PORT or a Twisted client string C{tcp:HOST:PORT}.  Meant
for monitoring probes and container health checks: it never sends mail or
logs in, and gives up after C{--timeout} seconds (default 10).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request

from pymta.control import default_root

__all__ = ["main", "send_health", "greeting_health", "http_health"]

EXIT_OK, EXIT_USAGE, EXIT_DOWN = 0, 100, 111

GREETINGS = {"smtp": ("220", "pymta-smtpd"), "pop3": ("+OK", "pymta-pop3d")}


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = endpoint.split(":")
    if parts[0] == "tcp":
        parts = parts[1:]
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"expected HOST:PORT or tcp:HOST:PORT, found {endpoint!r}")
    return parts[0], int(parts[1])


def greeting_health(kind: str, endpoint: str, timeout: float) -> str | None:
    """None when the server at C{endpoint} greets as C{kind} (smtp, pop3) should, else why not."""
    expected, name = GREETINGS[kind]
    host, port = _host_port(endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            line = s.makefile("rb").readline(1024).decode("utf-8", "replace").rstrip("\r\n")
    except OSError as e:
        return f"{name} at {host}:{port} is not serving: {e.strerror or e}"
    if not line.startswith(expected):
        return f"{name} at {host}:{port} greeted with {line[:80]!r}, not {expected}"
    return None


def send_health(root: str, timeout: float) -> str | None:
    """None when pymta-send of C{root} answers C{stat} on its control socket, else why not."""
    path = os.path.join(root, "run", "ctl.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b"stat\n")
            reply = s.makefile("rb").readline(4096).decode("utf-8", "replace")
    except OSError as e:
        return f"pymta-send is not serving: {path}: {e.strerror or e}"
    first = reply.rstrip("\n")
    if first != "ok":
        return f"pymta-send answered {first or 'nothing'!r} to stat"
    return None


def http_health(url: str, timeout: float) -> str | None:
    """None when C{url} (a C{/healthz}) answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(4096)
            return None
    except urllib.error.HTTPError as e:
        text = e.read(512).decode("utf-8", "replace").strip()
        return f"{url}: {e.code} {text}"
    except (OSError, ValueError) as e:
        return f"{url}: {getattr(e, 'reason', None) or e}"


def report(problem: str | None, what: str) -> int:
    if problem is None:
        sys.stdout.write(f"ok: {what}\n")
        return EXIT_OK
    sys.stderr.write(f"pymta health: {problem}\n")
    return EXIT_DOWN


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta health", description="is a pymta daemon serving?")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    parser.add_argument("--root", default=None, help="pymta root for 'send' (default $PYMTA_ROOT, else /var/pymta)")
    parser.add_argument("what", choices=("send", "smtp", "pop3", "http"))
    parser.add_argument("target", nargs="?", help="ENDPOINT for smtp and pop3, URL for http")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    if args.what == "send":
        root = os.path.abspath(args.root or default_root())
        return report(send_health(root, args.timeout), f"pymta-send of {root} is serving")
    if not args.target:
        sys.stderr.write(f"pymta health: {args.what} needs a target\n")
        return EXIT_USAGE
    if args.what == "http":
        return report(http_health(args.target, args.timeout), f"{args.target} answered 200")
    try:
        problem = greeting_health(args.what, args.target, args.timeout)
    except ValueError as e:
        sys.stderr.write(f"pymta health: {e}\n")
        return EXIT_USAGE
    return report(problem, f"{GREETINGS[args.what][1]} at {args.target} is serving")
