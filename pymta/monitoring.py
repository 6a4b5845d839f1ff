# -*- test-case-name: tests.test_monitoring -*-
"""
What every daemon adds for monitoring: C{--metrics ENDPOINT} (Prometheus's
C{/metrics} and C{/healthz}, L{pymta.metrics}) and the systemd readiness
notifications (L{pymta.sdnotify}).  Used by the four daemons' builders.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from pymta.sdnotify import SystemdNotifier

if TYPE_CHECKING:
    from pymta.metrics.daemon import DaemonMetrics

__all__ = ["METRICS_OPTION", "check_metrics_option", "daemon_metrics", "attach_monitoring"]

METRICS_OPTION = [
    "metrics", None, None,
    "serve Prometheus metrics (/metrics) and a health check (/healthz) on ENDPOINT, e.g. tcp:9125:interface=127.0.0.1",
]


def check_metrics_option(options: usage.Options) -> None:
    """A usage error naming C{--metrics} when its endpoint string cannot be parsed."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    description = options["metrics"]
    if description:
        try:
            serverFromString(reactor, description)
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise usage.UsageError(f"--metrics: bad endpoint {description!r}: {e}") from None


def daemon_metrics(options: Any) -> "DaemonMetrics | None":
    """A new L{DaemonMetrics} when C{--metrics} was given."""
    if not options.get("metrics"):
        return None
    from pymta.metrics.daemon import DaemonMetrics

    return DaemonMetrics()


def attach_monitoring(top: MultiService, served: IService, name: str, metrics: "DaemonMetrics | None",
                      endpoint: str | None, reactor: Any) -> None:
    """
    Under C{top}, after everything else: the C{--metrics} listener (its
    C{/healthz} says whether C{served} and all under it run) and the
    systemd notifier, last, so C{READY=1} follows every listener (only
    under a unit that asks for it: C{$NOTIFY_SOCKET} set).
    """
    if metrics is not None and endpoint:
        from pymta.metrics.daemon import running_check

        metrics.add_health(running_check(served, name))
        metrics.listener(reactor, endpoint).setServiceParent(top)
    if os.environ.get("NOTIFY_SOCKET"):
        SystemdNotifier(reactor).setServiceParent(top)
