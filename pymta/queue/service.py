# -*- test-case-name: tests.queue.test_service -*-
"""
The pymta-send service: everything the queue manager needs in one
L{MultiService}, built by L{build_send_service} for both C{twistd pymta-send}
and the all-in-one C{twistd pymta}.

Children, in start order (they stop in reverse, so pickup and injection end
before the scheduler drains its deliveries):

 0. the thread pool where incoming messages are written and fsynced;
 1. the L{Scheduler};
 2. the trigger FIFO listener (C{queue/lock/trigger});
 3. the inject socket C{ROOT/run/inject.sock}, writing through the
    in-process L{QueueSink} whose commits reach the scheduler at once
    (through a L{CommitFeed}: the sink is built first, the channels from it,
    then the scheduler with both);
 4. the control socket C{ROOT/run/ctl.sock} for C{pymta ctl} (its C{stop}
    stops the reactor, as twistd's C{TERM} handler does);
 5. the pid file C{ROOT/run/pymta-send.pid} and the signal handlers
    (C{HUP} reload, C{ALRM} run the queue now; C{TERM} is twistd's stop).
"""

from __future__ import annotations

import os
import signal
from typing import Any, Callable, Mapping, Union

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from pymta.control import ControlReader
from pymta.dkim.localsigning import LocalSigningSink
from pymta.dkim.signing import DKIMSigning
from pymta.interfaces import DEFERRAL, Channel, DeliveryJob, DeliveryResult, MessageSink
from pymta.qmailqueue.hook import DaemonSink, QmailQueueHook
from pymta.queue.cleaner import clean_queue
from pymta.queue.ctlserver import CtlServerService, ctl_socket_path
from pymta.queue.layout import QueueLayout
from pymta.queue.listening import UnixSocketService
from pymta.queue.disk import QueueDisk
from pymta.queue.scheduler import CHANNELS, Scheduler
from pymta.queue.sink import CommitFeed, QueueSink
from pymta.queue.store import Queue
from pymta.queue.syncing import queuesync_mode
from pymta.queue.trigger import TriggerListener
from pymta.signals import SignalService

__all__ = [
    "build_send_service",
    "NoDeliveryChannel",
    "PidFileService",
    "SignalService",
    "InjectSocketService",
    "pid_file_path",
    "ChannelSpec",
]

log = Logger(namespace="pymta.send")

PID_FILE = os.path.join("run", "pymta-send.pid")

#: channels: a mapping, or a factory given the service's MessageSink for forwards (through QMAILQUEUE's program)
ChannelSpec = Union[Mapping[str, Channel], Callable[[MessageSink], Mapping[str, Channel]], None]


def pid_file_path(root: str) -> str:
    return os.path.join(root, PID_FILE)


class NoDeliveryChannel:
    """
    Stands in for a channel that is not installed: every recipient is
    deferred (C{Z}) with a clear text, so nothing is dropped and nothing is
    claimed delivered.
    """

    max_recipients = 100

    def __init__(self, name: str) -> None:
        self.name = name
        self.text = f"no {name} delivery channel is installed (#4.3.0)\n"

    def start(self) -> None:
        pass

    def deliver(self, job: DeliveryJob) -> "defer.Deferred[list[DeliveryResult]]":
        return defer.succeed([DeliveryResult(DEFERRAL, self.text) for _ in job.recipients])

    def stop(self) -> None:
        return None


class PidFileService(Service):
    """Writes C{path} with our pid at start, removes it at stop (if it is still ours)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def startService(self) -> None:
        super().startService()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)

    def stopService(self) -> None:
        super().stopService()
        try:
            with open(self.path) as f:
                if f.read().strip() != str(os.getpid()):
                    return
            os.unlink(self.path)
        except OSError:
            pass


#: threads writing and fsyncing incoming messages (each mostly waits for the disk; more only adds GIL hand-offs)
COMMIT_THREADS = 8


class ThreadPoolService(Service):
    """Starts a thread pool with the service and stops it (after the services started later) at the end."""

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        if not self.pool.started:
            self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        if self.pool.started:
            self.pool.stop()


class InjectSocketService(UnixSocketService):
    """Listens on C{ROOT/run/inject.sock} with L{pymta.queue.injectserver.InjectServerFactory}."""

    listen_failure = "cannot listen on the inject socket"

    def __init__(self, root: str, sink: MessageSink, reactor: Any, trusted_uids: tuple[int, ...] = ()) -> None:
        from pymta.queue.framing import inject_socket_path

        super().__init__(reactor, inject_socket_path(root))
        self.root = root
        self.sink = sink
        self.trusted_uids = trusted_uids

    def listen(self) -> "defer.Deferred[Any]":
        from pymta.queue.injectserver import InjectServerFactory, listen_inject

        return listen_inject(self.reactor, self.root, InjectServerFactory(self.sink, trusted_uids=self.trusted_uids))


def _resolve_channels(spec: ChannelSpec, sink: MessageSink) -> dict[str, Channel]:
    if spec is None:
        given: Mapping[str, Channel] = {}
    elif callable(spec):
        given = spec(sink)
    else:
        given = spec
    channels = dict(given)
    for name in CHANNELS:
        if channels.get(name) is None:
            channels[name] = NoDeliveryChannel(name)
    return channels


def build_send_service(
    root: str,
    reader: ControlReader,
    channels: ChannelSpec = None,
    reactor: Any = None,
    *,
    trusted_uids: tuple[int, ...] = (),
    stop_timeout: float = 60.0,
    signals: bool = True,
    stop: Callable[[], object] | None = None,
    metrics: Any = None,
) -> tuple[MultiService, MessageSink]:
    """
    The pymta-send service for the queue under C{root} and the in-process
    L{MessageSink} (smtpd in the same process writes through it).
    C{stop} is what C{pymta ctl stop} calls (default: the reactor's stop, as
    on SIGTERM).

    C{channels} maps C{local}/C{remote} to L{Channel}s, or is a callable
    taking a sink for forwards (the queue's, through the C{QMAILQUEUE}
    program of this process's environment if it names one, as
    qmail-local's qmail-queue) and returning that mapping; a missing channel is a
    L{NoDeliveryChannel}.  C{trusted_uids} may ask the inject socket for an
    origin (the uid smtpd runs as).  C{metrics}, a
    L{pymta.metrics.daemon.DaemonMetrics}, counts deliveries from the
    scheduler's log lines and reads its state map at each scrape.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    root = os.path.abspath(root)
    controls = reader.current
    if controls.me is None and controls.sources.get("locals") == "default":
        # qmail-send refuses to start here too: it could not tell local mail from remote
        raise ValueError(f"{controls.path('me')} and {controls.path('locals')} are both missing; "
                         "pymta-send needs one of them")
    layout = QueueLayout.for_root(root)
    if not os.path.isdir(layout.queuedir):
        raise FileNotFoundError(f"{layout.queuedir}: no queue here; run 'pymta init {root}' first")
    reader.add_check(queuesync_mode)  # checked at every reload too, though only read here
    disk, sync_warning = QueueDisk.for_queue_manager(layout, controls.extra_lines("queuesync"))
    if sync_warning is not None:
        log.warn("{problem}", problem=sync_warning)
    commits = ThreadPool(minthreads=0, maxthreads=COMMIT_THREADS, name="pymta-send-commit")
    # the sink first (local forwarding channels write through it), then the scheduler with
    # both; the sink's commits reach the scheduler through the feed
    feed = CommitFeed()
    sink = QueueSink(Queue(disk), reactor, commits, on_commit=feed.publish, early_entry=True)
    # bounces and forwards through the QMAILQUEUE program of this process's environment, as
    # qmail-send's and qmail-local's through qmail-queue
    injected = DaemonSink(QmailQueueHook(root, reactor, lambda: reader.current.timeoutqmailqueue), sink)
    scheduler = Scheduler(
        disk, reader, _resolve_channels(channels, injected), injected, reactor,
        cleaner=clean_queue, stop_timeout=stop_timeout,
        threadpool=ThreadPool(minthreads=1, maxthreads=2, name="pymta-send-preprocess"),
        log=None if metrics is None else metrics.send_log(),
    )
    if metrics is not None:
        metrics.watch_send(scheduler, root, reactor)
    feed.subscribe(scheduler.notify)

    top = MultiService()
    top.setName("pymta-send")
    ThreadPoolService(commits).setServiceParent(top)
    scheduler.setServiceParent(top)
    TriggerListener(layout.trigger_path(), scheduler.scan_todo, reactor).setServiceParent(top)
    inject_sink = LocalSigningSink(sink, DKIMSigning.for_reader(reader, reactor))  # control/dkimkeys (pymta.dkim)
    InjectSocketService(root, inject_sink, reactor, trusted_uids).setServiceParent(top)
    CtlServerService(ctl_socket_path(root), scheduler, root, reactor, stop).setServiceParent(top)
    PidFileService(pid_file_path(root)).setServiceParent(top)
    if signals:
        SignalService({signal.SIGHUP: scheduler.reload, signal.SIGALRM: scheduler.run_all_now}, reactor).setServiceParent(top)
    return top, sink
