"""
Prometheus metrics of pymta's daemons (C{--metrics ENDPOINT}).

Each daemon process has one L{pymta.metrics.daemon.DaemonMetrics}: its own
registry (never prometheus-client's global one, so several daemons can
live in one test process), served by L{pymta.metrics.web} on the reactor.
Sessions are counted through L{pymta.sessionevents}; the queue is read
from pymta-send's one state map at scrape time (L{pymta.metrics.queue}).
docs/monitoring.md lists every metric.
"""
