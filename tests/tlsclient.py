"""A blocking TLS client for real-socket tests (run in a thread): send pipelined commands, read until closed."""

from __future__ import annotations

import socket
import ssl
import time


def pipeline_over_tls(port: int, commands: bytes, proxy_header: bytes = b"", wait: float = 10.0) -> bytes:
    """Connect to 127.0.0.1:C{port} with TLS, send C{proxy_header} then C{commands}, return all replies."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    s = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=wait))
    out = b""
    try:
        s.sendall(proxy_header + commands)
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
