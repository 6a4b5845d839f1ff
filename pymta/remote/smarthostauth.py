# -*- test-case-name: tests.remote.test_smarthostauth -*-
"""
C{control/smarthostauth}: the passwords for the smtproutes routes that
log in to their relay (option C{auth=LOGIN}, L{pymta.remote.smtproutes}).

One entry per line, C{#} lines and blank lines skipped::

    RELAY LOGIN PASSWORD

RELAY as the route names it (a host name, case does not matter, or an
address literal such as C{[192.0.2.1]}), LOGIN as in C{auth=}, and the
password: the rest of the line after the blanks that follow LOGIN (it may
hold blanks, but not end with one: trailing blanks are removed from every
control line).  The port is no part of the key: one account, one password.

The file holds secrets, so it must be a regular file of mode 0600 or
stricter owned by the mail account pymta-send runs as, or of mode 0640 owned
by root and the mail account's group (L{file_problem}, L{pymta.secretfile}):
anything else stops pymta-send at start and makes a reload keep the old
configuration, with one line naming the file.  A route whose login has no
entry here, or whose C{ca=} file is unusable, is refused the same way,
naming the smtproutes line.  No error message, log line, C{pymta showctl}
listing (L{masked}) or delivery report ever shows a password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from pymta.control import ControlError, ControlLines, ControlTable, Controls, entry_error
from pymta.hostnames import host_name_problem, literal_address
from pymta.remote.smtproutes import Route, RouteError, parse_route
from pymta.remote.trustanchors import check_ca_file
from pymta.secretfile import daemon_account, secret_file_problem

__all__ = [
    "NAME",
    "Credentials",
    "CredentialsTable",
    "smarthost_credentials",
    "file_problem",
    "check_file",
    "daemon_account",
    "masked",
]

NAME = "smarthostauth"


@dataclass(frozen=True)
class Credentials:
    """A login and its password (left out of the repr, so no log shows it)."""

    login: str
    password: str = field(repr=False)


def relay_key(relay: str) -> str:
    """The form a relay is matched in: lowercased, final dot dropped, address literals normalised."""
    literal = literal_address(relay)
    if literal is not None:
        return f"[{literal}]"
    return relay.lower().removesuffix(".")


def _relay_problem(relay: str) -> str | None:
    if relay.startswith("["):
        return None if literal_address(relay) is not None else f"not an IP address: {relay!r}"
    return host_name_problem(relay, final_dot=True)


class CredentialsTable:
    """The parsed entries; a bad line is a L{ControlError} naming it and never showing its password."""

    def __init__(self, lines: list[str] | None) -> None:
        self._entries: dict[tuple[str, str], Credentials] = {}
        entries = lines if lines is not None else []
        seen: dict[tuple[str, str], int] = {}
        for index, line in enumerate(entries):
            fields = line.split(None, 2)
            if len(fields) < 3:
                raise entry_error(entries, index, f"expected RELAY LOGIN PASSWORD, found {len(fields)} "
                                  f"field{'s' if len(fields) != 1 else ''}", NAME)
            relay, login, password = fields
            problem = _relay_problem(relay)
            if problem is not None:
                raise entry_error(entries, index, f"bad relay: {problem}", NAME)
            if not login.isprintable():
                raise entry_error(entries, index, "the login has a control character", NAME)
            key = (relay_key(relay), login)
            if key in seen:
                earlier = entries.linenos[seen[key]] if isinstance(entries, ControlLines) else seen[key] + 1
                raise entry_error(entries, index, f"{login} at {relay} repeats line {earlier}: one of the two "
                                  "would never apply", NAME)
            seen[key] = index
            self._entries[key] = Credentials(login, password)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, relay: str, login: str) -> Credentials | None:
        """The credentials for C{login} at C{relay} (as smtproutes names it), or None."""
        return self._entries.get((relay_key(relay), login))

    def for_route(self, route: Route | None) -> Credentials | None:
        """The credentials a route logs in with: None without C{auth=}; L{LookupError} when missing."""
        if route is None or route.login is None or route.relay is None:
            return None
        found = self.find(route.relay, route.login)
        if found is None:
            raise LookupError(f"no password for {route.login} at {route.relay} in control/{NAME}")
        return found


def _check_routes(smtproutes: Mapping[str, str], table: CredentialsTable) -> None:
    """Every C{auth=} route has a password in C{table}, every C{ca=} file is usable."""
    for key, value in smtproutes.items():
        try:
            route = parse_route(value)
        except RouteError:
            continue  # reported by the control files' own check
        problem = None
        try:
            table.for_route(route)
            if route.ca_file is not None:
                check_ca_file(route.ca_file)
        except (LookupError, ValueError) as e:
            problem = str(e)
        if problem is not None:
            if isinstance(smtproutes, ControlTable):
                raise smtproutes.error(key, problem)
            raise ControlError("smtproutes", 0, problem)


def smarthost_credentials(controls: Controls) -> CredentialsTable:
    """
    The table of C{controls}' control/smarthostauth, with every smtproutes
    route checked against it; L{ControlError} on a bad line of either.
    (The file's mode and owner are L{check_file}'s, as they are no matter
    of its text.)
    """
    table = CredentialsTable(controls.extra_lines(NAME))
    _check_routes(controls.smtproutes, table)
    return table


def file_problem(path: str, account: tuple[int, int] | None) -> str | None:
    """
    Why the file at C{path} may not hold passwords, or None (also when it
    is absent): the rule of every secret pymta reads, L{pymta.secretfile}.
    """
    if not os.path.lexists(path):
        return None
    return secret_file_problem(path, account, "the passwords")


def check_file(controls: Controls, account: tuple[int, int] | None) -> None:
    """L{ControlError} naming control/smarthostauth when L{file_problem} finds one."""
    path = controls.path(NAME)
    problem = file_problem(path, account)
    if problem is not None:
        raise ControlError(path, 0, problem)


def masked(line: str) -> str:
    """An entry as C{pymta showctl} shows it: relay and login, the password as asterisks."""
    fields = line.split(None, 2)
    if len(fields) < 3:
        return "(unusable line)"
    return f"{fields[0]} {fields[1]} ********"
