# -*- test-case-name: tests.test_qmqpclient -*-
"""
L{pymta.queue.client.enqueue} on a null client (a root with
control/qmqpservers): the message goes to the first QMQP server that
answers (L{pymta.qmqpclient}) and is never kept here.  The servers and
the timeouts are read for each message, so a change applies at once.
"""

from __future__ import annotations

from typing import IO, Sequence

from pymta.control import ControlError, load_controls
from pymta.interfaces import QueueReceipt
from pymta.qmqpclient import send_qmqp
from pymta.qmqpservers import qmqp_servers
from pymta.queue.errors import EXIT_CONFIG, QueueFailure

__all__ = ["send_to_qmqp_servers"]


def send_to_qmqp_servers(root: str, message: bytes | IO[bytes], sender: str, recipients: Sequence[str]) -> QueueReceipt:
    """Hand the message to C{root}'s QMQP servers; L{QueueFailure} (temporary unless a server says D) otherwise."""
    try:
        servers = qmqp_servers(load_controls(root))
    except ControlError as e:
        raise QueueFailure(EXIT_CONFIG, str(e)) from e
    except (OSError, ValueError) as e:
        raise QueueFailure(EXIT_CONFIG, f"control/qmqpservers: {e}") from e
    if not servers:
        raise QueueFailure(EXIT_CONFIG, "control/qmqpservers lists no server (remove it to use a local queue)")
    return send_qmqp(servers, message, sender, recipients)
