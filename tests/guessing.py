"""
Parallel password-guessing clients over real sockets on 127.0.0.x, for
the login limiter's acceptance tests (SMTP AUTH and POP3).

Each client runs in its own thread (not the reactor's pool, which the
server's password checks use), makes at most C{attempts} attempts and
stops at C{deadline} seconds; every socket has a timeout.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Callable

__all__ = ["run_clients", "smtp_auth_attempt", "pop3_login_attempt"]

SOCKET_TIMEOUT = 20.0


def run_clients(count: int, attempt: Callable[[int, int], str], attempts: int, deadline: float) -> list[str]:
    """Run C{count} clients in parallel; each calls C{attempt(client, n)} up to C{attempts} times; all replies."""
    replies: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline

    def client(number: int) -> None:
        for n in range(attempts):
            if time.monotonic() > stop_at:
                return
            try:
                reply = attempt(number, n)
            except OSError as e:
                reply = f"error: {e}"
            with lock:
                replies.append(reply)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop_at - time.monotonic()) + SOCKET_TIMEOUT)
    return replies


def _connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT, source_address=(source, 0))


def smtp_auth_attempt(port: int, source: str, user: bytes, password: bytes, hang_up: bool = False) -> str:
    """EHLO and AUTH PLAIN on a plaintext submission port; the AUTH reply, or "hung up" without waiting for it."""
    token = base64.b64encode(b"\0" + user + b"\0" + password)
    with _connect(port, source) as s, s.makefile("rb") as f:
        greeting = f.readline()
        if not greeting.startswith(b"220"):
            return greeting.decode("utf-8", "replace").strip()
        s.sendall(b"EHLO guesser\r\nAUTH PLAIN " + token + b"\r\n")
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                break
        if hang_up:
            return "hung up"
        return f.readline().decode("utf-8", "replace").strip()


def pop3_login_attempt(port: int, source: str, user: bytes, password: bytes, hang_up: bool = False) -> str:
    """USER and PASS (pipelined); the PASS reply, or "hung up" without waiting for it."""
    with _connect(port, source) as s, s.makefile("rb") as f:
        f.readline()
        s.sendall(b"USER " + user + b"\r\nPASS " + password + b"\r\n")
        f.readline()
        if hang_up:
            return "hung up"
        return f.readline().decode("utf-8", "replace").strip()
