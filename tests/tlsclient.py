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


def pipeline_over_tls(
    port: int, commands: bytes, proxy_header: bytes = b"", wait: float = 10.0,
    stall: float = 0.0, receive_buffer: int | None = None,
) -> bytes:
    """
    Connect to 127.0.0.1:C{port} with TLS, send C{proxy_header} then
    C{commands}, read nothing for C{stall} seconds, return all replies.
    C{receive_buffer} (SO_RCVBUF, set before connecting) keeps what the
    client side holds small, so the server's side holds the rest.
    """
    raw = socket.socket()
    if receive_buffer is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.settimeout(wait)
    raw.connect(("127.0.0.1", port))
    return _send_and_read(_context().wrap_socket(raw), proxy_header + commands, wait, stall)


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


def _send_and_read(s: ssl.SSLSocket, commands: bytes, wait: float, stall: float = 0.0) -> bytes:
    out = b""
    try:
        s.sendall(commands)
        time.sleep(stall)
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
