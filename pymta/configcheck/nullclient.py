# -*- test-case-name: tests.configcheck.test_nullclient -*-
"""
A null client (control/qmqpservers, docs/qmqp.md): a root whose mail goes
to QMQP servers.  It needs no queue and no pymta-send (L{pymta.configcheck.ownership}
does not ask for a queue there); what is judged here:

  - the file lists no server (only comments, or nothing): an error, since
    C{pymta inject}, C{sendmail} and pymta-smtpd would refuse every message;
  - a queue beside it: a warning naming the servers, since mail injected
    on this root goes to them and never into that queue (pymta-send only
    delivers what is already in it).

The syntax of each line is L{pymta.control}'s to judge (reported with the
other control files).  Whether a server answers is not looked at: like
DNS, that shows when the file is used (C{pymta inject} exits 111 and
names the servers it tried).
"""

from __future__ import annotations

import os
from typing import Iterator

from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem
from pymta.qmqpservers import FILE_NAME, null_client_path, qmqp_servers

__all__ = ["check_null_client"]


def check_null_client(ctx: CheckContext) -> Iterator[Problem]:
    """The null client's problems (see the module); nothing when control/qmqpservers is absent."""
    path = null_client_path(ctx.root)
    if ctx.controls is None or not os.path.exists(path):
        return
    if any(p.path == path for p in ctx.control_problems):
        return  # its bad lines are reported with the control files
    servers = qmqp_servers(ctx.controls)
    if not servers:
        yield Problem(path, 0, ERROR, "lists no server: pymta inject, sendmail and pymta-smtpd would refuse "
                                      f"every message (write a server a line, or remove control/{FILE_NAME} "
                                      "to use a local queue)")
    elif os.path.exists(ctx.path("queue")):
        yield Problem(path, 0, WARNING, f"this root is a null client: mail injected here goes to "
                                        f"{', '.join(str(s) for s in servers)} over QMQP, never into queue/ "
                                        f"(pymta-send only delivers what is already there; remove "
                                        f"control/{FILE_NAME} to use the queue)")
