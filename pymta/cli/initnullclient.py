# -*- test-case-name: tests.cli.test_initnullclient -*-
"""
C{pymta init ROOT --null-client SERVER...}: a root that is only a null
client (docs/qmqp.md).  It gets C{control/me} and C{control/qmqpservers}
and nothing else: no queue, no homes, no users, no certificate, since
every message leaves through QMQP.  An existing root keeps its files
except qmqpservers, which is written with the servers given (the root
becomes a null client); a C{me} that differs from C{--me} is an error,
as in C{pymta init}.
"""

from __future__ import annotations

import os
from typing import Sequence, TextIO

from pymta.fsutil import replace_file
from pymta.qmqpservers import FILE_NAME, entry_problem

__all__ = ["init_null_client", "NullClientError", "run"]


class NullClientError(Exception):
    """A problem that stops the run; C{status} is the exit code (100 usage, 111 system)."""

    def __init__(self, text: str, status: int = 100) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def init_null_client(root: str, me: str, servers: Sequence[str]) -> list[str]:
    """Make C{root} a null client of C{servers}; the lines to print."""
    for server in servers:
        problem = entry_problem(server)
        if problem is not None:
            raise NullClientError(f"--null-client: {problem}")
    control = os.path.join(root, "control")
    made = []
    try:
        if not os.path.isdir(control):
            os.makedirs(control, 0o755)
            made.append(f"made {control}/")
        me_path = os.path.join(control, "me")
        try:
            with open(me_path, encoding="utf-8") as f:
                existing = f.readline().strip()
        except FileNotFoundError:
            existing = None
        if existing is None:
            replace_file(me_path, (me + "\n").encode(), 0o644)
            made.append(f"made {me_path}")
        elif existing.lower() != me.lower():
            raise NullClientError(f"{me_path} says {existing}, not {me}")
        replace_file(os.path.join(control, FILE_NAME), "".join(s + "\n" for s in servers).encode(), 0o644)
    except OSError as e:
        raise NullClientError(f"{e.filename or root}: {e.strerror}", 111) from e
    made.append(f"made {control}/{FILE_NAME}")
    made.append(f"{root} is a null client: pymta inject and sendmail hand each message to "
                f"{', '.join(servers)} over QMQP; each server's etc/tcp.qmqp must allow this host")
    return made


def run(root: str, me: str, servers: Sequence[str], with_accounts: bool, out: TextIO, err: TextIO) -> int:
    """The command: its output, and its exit status (C{with_accounts}: C{--user} or C{--mail-uid} was given too)."""
    try:
        if with_accounts:
            raise NullClientError("--null-client takes no --user or --mail-uid: a null client has no mailboxes")
        out.writelines(line + "\n" for line in init_null_client(root, me, servers))
    except NullClientError as e:
        err.write(f"pymta init: fatal: {e.text}\n")
        return e.status
    return 0
