# -*- test-case-name: tests.test_sdnotify -*-
"""
systemd's readiness protocol (sd_notify): a datagram such as C{READY=1}
sent to the unix socket named in C{$NOTIFY_SOCKET} (a leading C{@} names
an abstract socket).  Without the variable nothing is sent, so the daemons
run the same under C{Type=notify}, C{Type=simple} or a shell.

L{SystemdNotifier} is the last child of each daemon's service: it says
C{READY=1} once the reactor runs and every service before it has started
(listeners bound, queue resumed), C{STOPPING=1} first thing at a stop, and
C{WATCHDOG=1} every half C{$WATCHDOG_USEC} when the unit sets
C{WatchdogSec=} (only from the reactor thread, so a stuck reactor stops
the pings and systemd restarts the daemon).  The variables are read once
and removed from the environment, so delivery programs do not inherit
them.
"""

from __future__ import annotations

import os
import socket
from typing import Any, MutableMapping

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["notify", "SystemdNotifier", "watchdog_interval"]

log = Logger(namespace="pymta.sdnotify")


def notify(address: str | None, state: str) -> bool:
    """Send C{state} to the notify socket C{address}; False when there is none or it failed."""
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(target)
            s.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval(environ: MutableMapping[str, str], pid: int) -> float | None:
    """Seconds between C{WATCHDOG=1} pings (half of C{$WATCHDOG_USEC}), or None when no watchdog is set for C{pid}."""
    usec = environ.get("WATCHDOG_USEC", "")
    watched = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if watched and watched != str(pid):
        return None
    return int(usec) / 2_000_000


class SystemdNotifier(Service):
    """Tells systemd when the daemon is ready and stopping, and pings its watchdog (see the module)."""

    name = "sdnotify"  # type: ignore[assignment]  # Twisted's Service leaves name unannotated, so None

    def __init__(self, reactor: Any, environ: MutableMapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.reactor = reactor
        self.address = environ.pop("NOTIFY_SOCKET", None)
        self.interval = watchdog_interval(environ, os.getpid())
        environ.pop("WATCHDOG_USEC", None)
        environ.pop("WATCHDOG_PID", None)
        self._pings: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.address:
            self.reactor.callWhenRunning(self._ready)

    def _ready(self) -> None:
        if not self.running:
            return
        if not notify(self.address, f"READY=1\nMAINPID={os.getpid()}"):
            log.warn("sd_notify: cannot reach {socket}", socket=self.address)
        if self.interval is not None:
            self._pings = LoopingCall(notify, self.address, "WATCHDOG=1")
            self._pings.clock = self.reactor
            self._pings.start(self.interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._pings is not None and self._pings.running:
            self._pings.stop()
        self._pings = None
        notify(self.address, "STOPPING=1")
