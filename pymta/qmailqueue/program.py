# -*- test-case-name: tests.qmailqueue.test_program -*-
"""
Which C{QMAILQUEUE} program a message goes to, and how it runs.

The variable comes from the environment the daemon was started with
(qmail sets it in the environment of tcpserver or of one of its rules)
and, in smtpd and its QMTP and QMQP servers, from the client's tcp.smtp
rule (C{:allow,QMAILQUEUE="/usr/local/bin/scan"}), which wins: that is
how a site scans only mail from outside.  An empty value is no program
(a rule can switch a filter off for its clients).  A relative path is
taken from the root, the directory the program runs in (qmail's programs
run in qmail's home).

The program runs without arguments and with the caller's environment,
plus C{PYMTA_ROOT} (the root, so its C{pymta queue} finds the queue) and
C{PYMTA_PYTHON} (the interpreter, which C{qmailbin/qmail-queue} uses);
its own C{QMAILQUEUE} names L{QUEUE_PROGRAM}, pymta's qmail-queue, as a
delivery program's does: a filter passes the message on with
C{"$QMAILQUEUE"} and never runs itself again.
It is given L{QmailQueueProgram.timeout} seconds to end
(C{control/timeoutqmailqueue}); qmail-queue's own bound is a day, but an
SMTP client waits only ten minutes for the answer to its message
(RFC 5321, 4.5.3.2.6) and then sends it again, so the default, five
minutes, lets the client hear the temporary failure instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

from pymta.qmailhelpers import BIN_DIR

__all__ = ["QmailQueueProgram", "program_for", "VARIABLE", "DEFAULT_TIMEOUT", "QUEUE_PROGRAM"]

VARIABLE = "QMAILQUEUE"
DEFAULT_TIMEOUT = 300
#: pymta's qmail-queue (C{pymta queue} under that name), in the program's own C{QMAILQUEUE}
QUEUE_PROGRAM = os.path.join(BIN_DIR, "qmail-queue")


@dataclass(frozen=True)
class QmailQueueProgram:
    """One program to run for one message: its path, working directory, environment and time bound."""

    path: str
    cwd: str
    environment: tuple[tuple[str, str], ...]
    timeout: float = DEFAULT_TIMEOUT

    @property
    def env(self) -> dict[str, str]:
        return dict(self.environment)


def program_for(root: str, environ: Mapping[str, str], rule_env: Mapping[str, str] | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> QmailQueueProgram | None:
    """
    The program C{QMAILQUEUE} names in C{rule_env} (a session's
    environment: its rule's variables, C{TCPREMOTEIP} ...), else in
    C{environ} (the process's), or None when it names none.
    """
    rule_env = rule_env or {}
    value = rule_env.get(VARIABLE, environ.get(VARIABLE, ""))
    if not value:
        return None
    merged = dict(environ)
    merged.update(rule_env)
    root = os.path.abspath(root)
    merged["PYMTA_ROOT"] = root
    merged[VARIABLE] = QUEUE_PROGRAM
    merged.setdefault("PYMTA_PYTHON", sys.executable)
    return QmailQueueProgram(os.path.join(root, value), root, tuple(sorted(merged.items())), timeout)
