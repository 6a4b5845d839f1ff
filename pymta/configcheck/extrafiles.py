# -*- test-case-name: tests.configcheck.test_extrafiles -*-
"""
Control files whose values are parsed where they are used, not by
L{pymta.control.load_controls}: each goes through the function its daemon
calls.

  - C{smtproutes}: every line's relay through
    L{pymta.remote.routes.parse_route} (remote delivery would defer every
    message of that domain with "Unable to read control files");
  - C{tlsdestinations}: L{pymta.remote.tlspolicy.TLSPolicyTable}, and each
    CA file it names must be readable;
  - C{rbls}: L{pymta.smtpd.dnsbl.parse_rbls};
  - C{concurrencyperip}: L{pymta.smtpd.context.per_ip_limit};
  - C{queuesync}: L{pymta.queue.syncing.QueueSync.from_control}, whose
    warnings (an unknown mode, syncfs unavailable) are pymta-send's;
  - C{etc/tcp.smtp}: L{pymta.smtpd.access.AccessRules}, every bad line,
    addresses with a blank before the colon (C{127.0.0.1 :deny} is a
    rule for the address C{"127.0.0.1 "}, which no client has), and lines
    without a colon (ignored, as tcprules ignores them: a warning).
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterator

from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem, every_error
from pymta.control import ControlError, Controls

__all__ = ["check_smtproutes", "check_extra_files", "check_tcp_smtp"]


def _numbered(path: str) -> list[tuple[int, str]]:
    """(line number, entry) as the control readers see entries: comments and blank lines skipped."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    entries = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip(" \t\r")
        if line and not line.startswith("#"):
            entries.append((lineno, line))
    return entries


def check_smtproutes(ctx: CheckContext) -> Iterator[Problem]:
    """Every smtproutes relay through the parser remote delivery uses."""
    from pymta.remote.routes import RouteError, parse_route

    path = ctx.path("control", "smtproutes")
    for lineno, entry in _numbered(path):
        if ":" not in entry:
            continue  # the control reader reports it
        try:
            parse_route(entry.split(":", 1)[1])
        except RouteError as e:
            yield Problem(path, lineno, ERROR, str(e))


def _parsed(path: str, parse: Callable[[], object]) -> Iterator[Problem]:
    """Problems of C{parse()}, which raises L{ControlError} or ValueError on a bad file."""
    try:
        parse()
    except ControlError as e:
        yield Problem(e.path, e.lineno, ERROR, e.reason)
    except ValueError as e:
        yield Problem(path, 0, ERROR, str(e))


def _tlsdestinations(controls: Controls) -> Iterator[Problem]:
    from pymta.remote.tlspolicy import TLSPolicyTable

    path = controls.path("tlsdestinations")
    yield from _parsed(path, lambda: TLSPolicyTable(controls.extra_lines("tlsdestinations")))
    for lineno, entry in _numbered(path):
        if entry.startswith("-"):
            continue
        ca = entry.partition(":")[2].strip()
        if ca and not os.access(ca, os.R_OK):
            why = "does not exist" if not os.path.exists(ca) else "is not readable"
            yield Problem(path, lineno, ERROR, f"CA file {ca} {why}: every delivery to this destination would defer")


def _queuesync(ctx: CheckContext, controls: Controls) -> Iterator[Problem]:
    from pymta.queue.syncing import QueueSync

    queuedir = ctx.path("queue")
    if not os.path.isdir(queuedir):
        return
    path = controls.path("queuesync")
    try:
        sync, warning = QueueSync.from_control(queuedir, controls.extra_lines("queuesync"))
    except ControlError as e:
        yield Problem(e.path, e.lineno, ERROR, e.reason)
        return
    except ValueError as e:
        yield Problem(path, 0, ERROR, str(e))
        return
    sync.close()
    if warning is not None:
        yield Problem(path, 1, WARNING, warning.removeprefix("control/queuesync: "))


def check_extra_files(ctx: CheckContext) -> Iterator[Problem]:
    """tlsdestinations, rbls, concurrencyperip and queuesync through their daemons' parsers."""
    from pymta.smtpd.context import per_ip_limit
    from pymta.smtpd.dnsbl import parse_rbls

    controls = ctx.controls
    if controls is None:
        return
    yield from _tlsdestinations(controls)
    yield from _parsed(controls.path("rbls"), lambda: parse_rbls(controls.extra_lines("rbls") or []))
    yield from _parsed(controls.path("concurrencyperip"), lambda: per_ip_limit(controls))
    yield from _queuesync(ctx, controls)


_RULE = re.compile(r"^(.*?):(allow|deny)", re.S)


def check_tcp_smtp(ctx: CheckContext) -> Iterator[Problem]:
    """ROOT/etc/tcp.smtp through pymta-smtpd's parser, every bad line, and blanks around addresses."""
    from pymta.smtpd.access import AccessRules, TcpRulesError

    path = ctx.path("etc", "tcp.smtp")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return
    except OSError as e:
        yield Problem(path, 0, ERROR, f"cannot read it: {e.strerror}")
        return
    lines = text.split("\n")
    found = every_error(lines, lambda work: AccessRules.parse("\n".join(work), path), (TcpRulesError,),
                        lambda e: e.lineno)
    bad = set()
    for error in found:
        bad.add(error.lineno)
        yield Problem(path, error.lineno, ERROR, f"unable to parse this line: {error.line}")
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip(" \t\r")
        if lineno in bad or not line or line.startswith("#"):
            continue
        m = _RULE.match(line)
        if m is None:
            if ":" not in line:
                yield Problem(path, lineno, WARNING, f"ignored, as tcprules does: no colon in {line.strip()!r}")
            continue
        address = m.group(1)
        if address != address.strip():
            yield Problem(path, lineno, ERROR,
                          f"blank around the address {address.strip()!r}: this rule never applies")
