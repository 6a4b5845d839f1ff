# -*- test-case-name: tests.test_qmqpclient -*-
"""
control/qmqpservers: the QMQP servers of a null client (qmail's
mini-qmail; see docs/qmqp.md).  When the file exists, C{pymta inject},
C{pymta sendmail} and everything else that queues mail through
L{pymta.queue.client.enqueue} hand each message to the first of these
servers that answers (L{pymta.qmqpclient}) instead of a local queue.

One server a line, in the order they are tried: an IP address (QMQP's
port 628, as in qmail) or C{IP:PORT}; an IPv6 address with a port is
written C{[ADDRESS]:PORT}.  L{pymta.control} reads and checks the file
(qmail's own; host names and bad ports are refused there, naming the
line); this module turns its entries into addresses and ports.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from pymta.control import Controls
from pymta.hostnames import literal_address

__all__ = ["QMQPServer", "FILE_NAME", "QMQP_PORT", "server_of", "entry_problem", "qmqp_servers", "null_client_path"]

#: the control file's name
FILE_NAME = "qmqpservers"
#: QMQP's port
QMQP_PORT = 628


@dataclass(frozen=True)
class QMQPServer:
    """One server: its address and port."""

    host: str
    port: int = QMQP_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def server_of(entry: str) -> QMQPServer:
    """The server of one entry, as L{pymta.control} has checked it (C{ValueError} for anything else)."""
    port = ""
    if entry.startswith("["):
        end = entry.find("]")
        host = literal_address(entry[: end + 1]) if end != -1 else None
        if host is None:
            raise ValueError(f"not an IP address: {entry!r}")
        port = entry[end + 2 :]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(f"not a port: {port!r}")
    return QMQPServer(host, int(port) if port else QMQP_PORT)


def entry_problem(entry: str) -> str | None:
    """Why C{entry} is no server line (an IP address, C{IP:PORT}, C{[IPv6]:PORT}), or None."""
    try:
        server = server_of(entry)
        ipaddress.ip_address(server.host)
    except ValueError:
        return f"not an IP address or IP:PORT: {entry!r}"
    if not 0 < server.port < 65536:
        return f"bad port in {entry!r} (expected 1 to 65535)"
    return None


def qmqp_servers(controls: Controls) -> tuple[QMQPServer, ...]:
    """The servers of C{controls}' control/qmqpservers, in order (none when it is absent or empty)."""
    return tuple(server_of(entry) for entry in controls.qmqpservers)


def null_client_path(root: str) -> str:
    """C{ROOT/control/qmqpservers}: when it exists, the root is a null client."""
    return os.path.join(root, "control", FILE_NAME)
