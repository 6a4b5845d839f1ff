# -*- test-case-name: tests.metrics.test_queue -*-
"""
pymta-send's metrics.

L{QueueCollector} reads the scheduler's one state map
(L{pymta.queue.messagestate.MessageStates}) at scrape time, from memory
only (a scrape runs in the reactor thread and reads no queue file), so the metrics
can never disagree with C{pymta ctl stat}: no parallel counters of state.
L{DeliveryCounter} listens to qmail-send's log lines as
L{pymta.queue.qmaillog.QmailLog} emits them (C{starting delivery N: msg M
to CHANNEL ...}, then C{delivery N: success: ...}) and counts results by
channel; the latency from a message's birth to its successful delivery
goes into a histogram.  Both run in the reactor thread.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pymta.queue.ages import LIMITS, age_index, column_label
from pymta.queue.messagestate import MessageState, Stage
from pymta.remote.tcpto import DeadHostMemory
from pymta.report.logline import DeliveryResult, DeliveryStart, parse_text

__all__ = ["QueueCollector", "DeliveryCounter", "AGE_COLUMNS", "age_column", "LATENCY_BUCKETS"]

#: the lower edge of each age column in minutes (qshape's columns, L{pymta.queue.ages})
AGE_COLUMNS = (0, *LIMITS)

#: seconds from acceptance to delivery: from a local delivery's instant to a remote one after days of retries
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400)


def age_column(seconds: float) -> str:
    """The qshape column of a message C{seconds} old: C{"0-5"} ... C{"640-1280"}, C{"1280+"} (minutes)."""
    return column_label(age_index(seconds))


def _age_labels() -> list[str]:
    return [column_label(index) for index in range(len(LIMITS) + 1)] + ["unknown"]


def birth_of(state: MessageState) -> int | None:
    """
    When the message was accepted, as far as memory knows: its info file's
    mtime (noted when it was preprocessed or found at start), its first
    attempt's start, or a job's first pass.
    """
    births = [job.birth for job in state.jobs.values() if job.birth]
    if state.birth is not None:
        births.append(state.birth)
    if state.first is not None:
        births.append(state.first.since)
    return min(births) if births else None


class QueueCollector(Collector):
    """
    Queue size by stage and by age, the concurrency in use per channel,
    the remote hosts marked dead and the scheduler's own totals, read from
    C{scheduler} (a L{pymta.queue.scheduler.Scheduler}) at each scrape.
    """

    def __init__(self, scheduler: Any, dead_hosts: DeadHostMemory, now: Callable[[], float]) -> None:
        self.scheduler = scheduler
        self.dead_hosts = dead_hosts
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        by_stage = GaugeMetricFamily("pymta_queue_messages", "Messages in pymta-send, by stage.", labels=["state"])
        messages = self.scheduler.messages
        for stage in Stage:
            by_stage.add_metric([stage.name.lower()], messages.count(stage))
        yield by_stage
        columns = dict.fromkeys(_age_labels(), 0)
        oldest = 0.0
        for state in messages.in_stage(*Stage, peek=True):
            birth = birth_of(state)
            if birth is None:
                columns["unknown"] += 1
                continue
            columns[age_column(now - birth)] += 1
            oldest = max(oldest, now - birth)
        by_age = GaugeMetricFamily("pymta_queue_messages_by_age",
                                   "Messages in pymta-send by age in minutes (qshape's columns); "
                                   "unknown: not preprocessed yet.", labels=["age_minutes"])
        for label, count in columns.items():
            by_age.add_metric([label], count)
        yield by_age
        yield GaugeMetricFamily("pymta_queue_oldest_message_age_seconds",
                                "Age of the oldest message whose age is known.", value=oldest)
        slots = self.scheduler.slots()  # not counts(): it reads the reason files
        used = GaugeMetricFamily("pymta_channel_concurrency_used", "Deliveries running, per channel.",
                                 labels=["channel"])
        limit = GaugeMetricFamily("pymta_channel_concurrency_limit",
                                  "concurrencylocal and concurrencyremote.", labels=["channel"])
        for channel in ("local", "remote"):
            used.add_metric([channel], slots[f"{channel}_used"])
            limit.add_metric([channel], slots[f"{channel}_limit"])
        yield used
        yield limit
        yield GaugeMetricFamily("pymta_queue_paused", "1 while deliveries are paused (pymta ctl pause).",
                                value=int(self.scheduler.paused))
        dead = sum(1 for entry in self.dead_hosts.entries() if self.dead_hosts.is_dead(entry.address))
        yield GaugeMetricFamily("pymta_remote_hosts_dead", "Remote hosts skipped for now after timeouts (tcpto).",
                                value=dead)
        stats = self.scheduler.stats
        yield CounterMetricFamily("pymta_messages_completed", "Messages finished and removed from the queue.",
                                  value=stats.get("messages_done", 0))
        yield CounterMetricFamily("pymta_bounces", "Bounce messages injected.", value=stats.get("bounces", 0))


#: deliveries started whose result has not been seen: more means lost results, which are forgotten
_PENDING_MAX = 100_000


class DeliveryCounter:
    """
    A twisted.logger observer of pymta-send's qmail log: deliveries by
    channel and result, and the time from a message's birth to each
    successful delivery (one sample per recipient).
    """

    def __init__(self, registry: CollectorRegistry, scheduler: Any, now: Callable[[], float]) -> None:
        self.scheduler = scheduler
        self.now = now
        self.deliveries = Counter("pymta_deliveries", "Delivery results, by channel and result.",
                                  ["channel", "result"], registry=registry)
        self.latency = Histogram("pymta_delivery_latency_seconds",
                                 "Seconds from a message's acceptance to its successful delivery, per recipient.",
                                 ["channel"], buckets=LATENCY_BUCKETS, registry=registry)
        self._started: dict[int, tuple[str, int | None]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        line = event.get("qmail_line")
        if not isinstance(line, str):
            return
        parsed = parse_text(line)
        if isinstance(parsed, DeliveryStart):
            if len(self._started) >= _PENDING_MAX:
                self._started.clear()
            state = self.scheduler.messages.get(parsed.message_id)
            self._started[parsed.number] = (parsed.channel, None if state is None else birth_of(state))
            return
        if not isinstance(parsed, DeliveryResult):
            return
        known = self._started.pop(parsed.number, None)
        if known is None:
            return
        channel, birth = known
        self.deliveries.labels(channel, parsed.status).inc()
        if parsed.status == "success" and birth is not None:
            self.latency.labels(channel).observe(max(0.0, self.now() - birth))
