# -*- test-case-name: tests.metrics.test_daemon -*-
"""
The metrics of one daemon process: its registry, what counts into it, its
health checks and its C{--metrics} listener.

The daemons' builders (L{pymta.services}, L{pymta.queue.service},
L{pymta.pop3d.tap}, L{pymta.tap}) make one L{DaemonMetrics} when given
C{--metrics} and hand its parts to what they build: L{sessions} to smtpd
and pop3d, L{send_log} and L{watch_send} to pymta-send.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from prometheus_client import CollectorRegistry
from twisted.application.service import IService
from twisted.logger import ILogObserver, Logger, LogEvent, globalLogPublisher
from zope.interface import implementer

from pymta.metrics.sessions import SessionCounters, SessionFamilies
from pymta.metrics.web import HealthCheck, metrics_listener

__all__ = ["DaemonMetrics", "running_check"]


@implementer(ILogObserver)
class _LogTee:
    """Every event to the global log publisher first, then to the extra observers."""

    def __init__(self) -> None:
        self.extra: list[Callable[[LogEvent], None]] = []

    def __call__(self, event: LogEvent) -> None:
        globalLogPublisher(event)
        for observer in self.extra:
            try:
                observer(event)
            except Exception:
                pass  # counting must never break the log or the queue


def running_check(svc: IService, name: str) -> HealthCheck:
    """A health check: C{svc} and every service under it are running."""

    def check() -> str | None:
        stack = [svc]
        while stack:
            current = stack.pop()
            if not current.running:
                what = current.name or name
                return f"{name}: {what} is not running"
            stack.extend(getattr(current, "services", []))
        return None

    return check


class DaemonMetrics:
    """One registry per daemon process, and the health checks its C{/healthz} runs."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._families: SessionFamilies | None = None
        self._send_tee: _LogTee | None = None
        self._checks: list[HealthCheck] = []

    # -- what counts --------------------------------------------------------------

    def sessions(self, service: str) -> SessionCounters:
        """The session events of C{service} (C{smtpd} or C{pop3d})."""
        if self._families is None:
            self._families = SessionFamilies(self.registry)
        return SessionCounters(self._families, service)

    def send_log(self) -> Any:
        """The L{pymta.queue.qmaillog.QmailLog} for pymta-send: its lines also reach L{watch_send}'s counter."""
        from pymta.queue.qmaillog import QmailLog

        self._send_tee = _LogTee()
        return QmailLog(Logger(namespace="pymta.send", observer=self._send_tee))

    def watch_send(self, scheduler: Any, root: str, clock: Any) -> None:
        """Collect the queue of C{scheduler} (built with L{send_log}) at each scrape and count its deliveries."""
        from pymta.metrics.queue import DeliveryCounter, QueueCollector
        from pymta.remote.tcpto import DeadHostMemory, tcpto_path

        now = clock.seconds
        self.registry.register(QueueCollector(scheduler, DeadHostMemory(tcpto_path(root), clock=now, pid=os.getpid()), now))
        if self._send_tee is not None:
            self._send_tee.extra.append(DeliveryCounter(self.registry, scheduler, now))

    # -- health and the listener -----------------------------------------------------

    def add_health(self, check: HealthCheck) -> None:
        self._checks.append(check)

    def health(self) -> str | None:
        """None while every part serves, else the first reason it does not."""
        for check in self._checks:
            problem = check()
            if problem is not None:
                return problem
        return None

    def listener(self, reactor: Any, endpoint: str) -> IService:
        """The C{--metrics ENDPOINT} service: C{/metrics} and C{/healthz}."""
        return metrics_listener(reactor, endpoint, self.registry, self.health)
