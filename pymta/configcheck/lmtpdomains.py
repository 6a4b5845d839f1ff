# -*- test-case-name: tests.configcheck.test_lmtpdomains -*-
"""
control/lmtproutes against control/locals and control/virtualdomains: a
domain routed to LMTP is a remote domain for pymta-send, so a domain that
routing gives to local delivery first (L{pymta.queue.routing}) never
reaches its LMTP route.  Each such line is a warning; the syntax of the
file is L{pymta.remote.lmtproutes}' to judge (reported with the other
control files).
"""

from __future__ import annotations

from typing import Iterator

from pymta.configcheck.problem import WARNING, CheckContext, Problem
from pymta.control import ControlError, ControlLines
from pymta.queue.routing import LOCAL, route_recipient
from pymta.remote.lmtproutes import NAME, LMTPRoutes

__all__ = ["check_lmtp_domains"]


def check_lmtp_domains(ctx: CheckContext) -> Iterator[Problem]:
    """A warning for each lmtproutes domain that locals or virtualdomains hand to local delivery."""
    controls = ctx.controls
    if controls is None:
        return
    try:
        lines = controls.extra_lines(NAME)
    except OSError:
        return  # the control files' check reports it
    path = ctx.path("control", NAME)
    for index, line in enumerate(lines or ()):
        try:
            LMTPRoutes([line])
        except ControlError:
            continue  # the control files' check reports the line
        domain = line.partition(":")[0].lower()
        if domain.startswith(".") or route_recipient(f"postmaster@{domain}", controls).channel != LOCAL:
            continue
        lineno = lines.linenos[index] if isinstance(lines, ControlLines) else index + 1
        source = "locals" if domain in controls.locals else "virtualdomains"
        yield Problem(path, lineno, WARNING, f"{domain} is delivered locally (control/{source}): its mail never "
                      f"reaches this LMTP route; take it out of control/{source} (keep it in rcpthosts)")
