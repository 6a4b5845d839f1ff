"""A blocking TLS client for real-socket tests (run in a thread): send pipelined commands, read until closed."""

from __future__ import annotations

import socket
import ssl
import time


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def pipeline_over_tls(port: int, commands: bytes, proxy_header: bytes = b"", wait: float = 10.0) -> bytes:
    """Connect to 127.0.0.1:C{port} with TLS, send C{proxy_header} then C{commands}, return all replies."""
    s = _context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=wait))
    return _send_and_read(s, proxy_header + commands, wait)


def pipeline_after_starttls(port: int, before: bytes, ready: bytes, commands: bytes, wait: float = 10.0) -> bytes:
    """
    Connect in plaintext, send C{before} (ending with STARTTLS/STLS), read
    until C{ready}, start TLS, send C{commands}; return all replies.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=wait)
    raw.sendall(before)
    plain = b""
    while not plain.endswith(ready):
        data = raw.recv(1)
        if not data:
            return plain
        plain += data
    return plain + _send_and_read(_context().wrap_socket(raw), commands, wait)


def _send_and_read(s: ssl.SSLSocket, commands: bytes, wait: float) -> bytes:
    out = b""
    try:
        s.sendall(commands)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            data = s.recv(4096)
            if not data:
                break
            out += data
    except (OSError, ssl.SSLError) as e:
        out += b"<" + repr(e).encode() + b">"
    finally:
        s.close()
    return out
