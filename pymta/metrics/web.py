# -*- test-case-name: tests.metrics.test_web -*-
"""
The C{--metrics ENDPOINT} listener: C{/metrics} in Prometheus's text
format and C{/healthz}, served by twisted.web on the reactor.

prometheus-client's own Twisted resource runs the collection in the
reactor's thread pool; here the collectors read the scheduler's state,
which only the reactor thread may touch, so the page is rendered in the
reactor thread (a collection is a walk over in-memory maps, no disk I/O
but the small tcpto file).
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["MetricsPage", "HealthPage", "QuietSite", "metrics_site", "metrics_listener", "HealthCheck"]

#: None when the daemon serves, else one line saying why not
HealthCheck = Callable[[], "str | None"]


class MetricsPage(Resource):
    """C{GET /metrics}: the registry in Prometheus's text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class HealthPage(Resource):
    """C{GET /healthz}: C{200 ok} while the daemon serves, else C{503} and the reason."""

    isLeaf = True

    def __init__(self, check: HealthCheck) -> None:
        super().__init__()
        self.check = check

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        problem = self.check()
        if problem is None:
            return b"ok\n"
        request.setResponseCode(503)
        return problem.encode("utf-8", "replace") + b"\n"


class QuietSite(Site):
    """A Site that keeps no access log: a scrape every few seconds is not news for the mail log."""

    def log(self, request: http.Request) -> None:
        pass


def metrics_site(registry: CollectorRegistry, health: HealthCheck) -> Site:
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    root.putChild(b"healthz", HealthPage(health))
    site = QuietSite(root)
    site.noisy = False
    site.displayTracebacks = False
    return site


def metrics_listener(reactor: Any, endpoint: str, registry: CollectorRegistry,
                     health: HealthCheck) -> StreamServerEndpointService:
    """A service listening on C{endpoint} (a Twisted server endpoint string) for scrapes."""
    svc = StreamServerEndpointService(serverFromString(reactor, endpoint), metrics_site(registry, health))
    svc._raiseSynchronously = True  # a port already in use stops the daemon at start, as the mail listeners do
    svc.setName("metrics")
    return svc
