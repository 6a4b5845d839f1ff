# -*- test-case-name: tests.local.test_channel -*-
"""
The local delivery channel of pymta-send: L{LocalChannel}.

Construction (by the send service)::

    channel = LocalChannel(root, reader, sink)          # reactor=None: the global reactor
    # in the service's privilegedStartService (still root under twistd):
    channel.start()                                     # spawns python -m pymta.local.spawner ROOT
    ...
    d = channel.deliver(DeliveryJob(message_id, message_path, sender, (recipient,)))
    # -> Deferred[list[DeliveryResult]], one per recipient, never errbacks
    ...
    yield channel.stop()                                # in stopService: drains in-flight deliveries

The spawner keeps the privileges the process had when C{start()} ran; twistd
may drop the parent's afterwards.  If the spawner dies, in-flight deliveries
become C{Z} and it is started again after C{restart_delay} seconds (then with
the parent's current, possibly dropped, privileges: deliveries for other uids
are deferred with a clear text until pymta-send is restarted as root).

Requests and reports are the typed records of L{pymta.local.spawnrecords}
(a malformed report defers its delivery; garbage on the pipe kills the
spawner).  Each report becomes a L{DeliveryResult}; a successful delivery whose
.qmail file forwards is queued here through the L{MessageSink} (message =
Delivered-To line + the queued message, sender = NEWSENDER, origin
C{by uid N}) before the result is given: C{did F+W+P} plus C{qp N}, or
C{Unable to forward message: ...} as C{Z}/C{D}.  pymta-send's sink runs
the C{QMAILQUEUE} program of its environment when that names one
(L{pymta.qmailqueue.hook.DaemonSink}), as qmail-local's qmail-queue does.
Report texts follow qmail-lspawn (e.g. C{did 0+0+1\\n}).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import split_address
from pymta.control import ControlReader
from pymta.interfaces import DeliveryJob, DeliveryResult, MessageSink, QueueRefused
from pymta.local.envelope import dtline
from pymta.local.requestwriter import RequestWriter, request_writer
from pymta.local.spawnrecords import DeliveryReport, DeliveryRequest, RecordError, SpawnerHello, parse_spawner_record
from pymta.local.wire import RecordReader, WireError

__all__ = ["LocalChannel", "SpawnerProtocol"]

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_RUNNING = "Local delivery spawner is not running. (#4.3.0)\n"
SPAWNER_DIED = "Local delivery spawner exited during the delivery. (#4.3.0)\n"


def _as_list(result: DeliveryResult) -> list[DeliveryResult]:
    return [result]


def _internal_error(failure: Failure, count: int) -> list[DeliveryResult]:
    """Every recipient of a delivery the channel itself failed is deferred (gatherResults' failure)."""
    return [DeliveryResult("Z", f"Internal error in local channel: {failure.getErrorMessage()}. (#4.3.0)\n")] * count


class SpawnerProtocol(ProcessProtocol):
    """The parent's end of the spawner's pipes."""

    log = Logger()
    transport: IProcessTransport  # spawned, so connected before any method runs
    requests: RequestWriter  # how requests reach the spawner's stdin: set when it is spawned

    def __init__(self, channel: "LocalChannel") -> None:
        self.channel = channel
        self.reader = RecordReader()
        self.hello: SpawnerHello | None = None
        self.ended: Deferred[None] = Deferred()
        self._stderr = b""
        self._reports_closed = False
        self._exit_reason: Failure | None = None
        #: the channel was told the spawner is gone (once)
        self._told = False

    def connectionMade(self) -> None:
        self.requests = request_writer(self.transport)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2:
            self._stderr += data
            *lines, self._stderr = self._stderr.split(b"\n")
            for line in lines:
                self.log.warn("local spawner: {line}", line=line.decode("utf-8", "replace"))
            return
        if childFD != 1:
            return
        try:
            records = self.reader.feed(data)
        except WireError as e:
            self.log.error("local spawner sent garbage ({error}); killing it", error=str(e))
            self.transport.signalProcess("KILL")
            return
        for record in records:
            try:
                parsed = parse_spawner_record(record)
            except RecordError as e:
                self.channel._bad_report(record, e)
                continue
            if isinstance(parsed, SpawnerHello):
                self.hello = parsed
                self.channel._spawner_ready(parsed)
            else:
                self.channel._report(parsed)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD == 1:
            self._reports_closed = True
            self._gone()

    def processExited(self, reason: Failure) -> None:
        self._exit_reason = reason
        self._gone()

    def _gone(self) -> None:
        """
        The spawner is gone once it has exited and every report it wrote is
        read (its stdout closed): its deliveries still pending never get a
        report.  Delivery children may hold its stderr longer (see
        L{processEnded}); that must not hold up the deferral and restart.
        """
        if self._reports_closed and self._exit_reason is not None and not self._told:
            self._told = True
            self.channel._spawner_ended(self, self._exit_reason)

    def processEnded(self, reason: Failure) -> None:
        if self._stderr:
            self.log.warn("local spawner: {line}", line=self._stderr.decode("utf-8", "replace"))
        if not self._told:
            self._told = True
            self.channel._spawner_ended(self, reason)
        self.ended.callback(None)


class LocalChannel:
    """The L{pymta.interfaces.Channel} for local recipients (see the module docstring)."""

    log = Logger()
    max_recipients = 1

    def __init__(
        self,
        root: str,
        reader: ControlReader,
        sink: MessageSink,
        reactor: Any = None,
        *,
        python: str = sys.executable,
        restart_delay: float = 1.0,
        stop_timeout: float = 300.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.root = os.path.abspath(root)
        self.reader = reader
        self.sink = sink
        self.reactor = reactor
        self.python = python
        self.restart_delay = restart_delay
        self.stop_timeout = stop_timeout
        self.protocol: SpawnerProtocol | None = None
        self.spawner_uid: int | None = None
        self._ready: list[Deferred[SpawnerHello]] = []
        self._pending: dict[int, tuple[Deferred[DeliveryResult], DeliveryJob, str]] = {}
        self._next_slot = 1
        self._stopping = False
        self._restart_call: Any = None
        self._failed_starts = 0

    # -- process management --------------------------------------------------

    def start(self) -> None:
        """Spawn the spawner (call from privilegedStartService to keep root there)."""
        self._stopping = False
        if self.protocol is not None:
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "PYTHONPATH": _PACKAGE_PARENT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
        }
        protocol = SpawnerProtocol(self)
        self.protocol = protocol
        self.reactor.spawnProcess(
            protocol,
            self.python,
            [self.python, "-m", "pymta.local.spawner", self.root],
            env=env,
            path="/",
            childFDs={0: "w", 1: "r", 2: "r"},
        )

    def when_ready(self) -> "Deferred[SpawnerHello]":
        """Fires with the spawner's hello (pid, uid) once it is running."""
        if self.protocol is not None and self.protocol.hello is not None:
            return defer.succeed(self.protocol.hello)
        d: Deferred[SpawnerHello] = Deferred()
        self._ready.append(d)
        return d

    def _spawner_ready(self, hello: SpawnerHello) -> None:
        self.spawner_uid = hello.uid
        self._failed_starts = 0
        self.log.info("local spawner running as pid {pid}, uid {uid}", pid=hello.pid, uid=hello.uid)
        ready, self._ready = self._ready, []
        for d in ready:
            d.callback(hello)

    def _spawner_ended(self, protocol: SpawnerProtocol, reason: Failure) -> None:
        if self.protocol is protocol:
            self.protocol = None
        pending, self._pending = self._pending, {}
        for d, _, _ in pending.values():
            d.callback(DeliveryResult("Z", SPAWNER_DIED))
        if self._stopping:
            return
        if protocol.hello is None:
            self._failed_starts += 1  # died before saying hello: back off, up to a minute
        delay = min(self.restart_delay * 2 ** self._failed_starts, max(self.restart_delay, 60.0))
        self.log.error(
            "local spawner exited unexpectedly ({reason}); restarting in {delay} s",
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        self._restart_call = self.reactor.callLater(delay, self._restart)

    def _restart(self) -> None:
        self._restart_call = None
        if not self._stopping:
            self.start()

    def stop(self) -> "Deferred[None]":
        """Stop taking work; the spawner finishes running deliveries, then exits."""
        self._stopping = True
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
            self._restart_call = None
        protocol = self.protocol
        if protocol is None:
            return defer.succeed(None)
        protocol.transport.closeStdin()
        timer = self.reactor.callLater(self.stop_timeout, self._kill, protocol)

        def stopped(result: None) -> None:
            if timer.active():
                timer.cancel()
            return result

        return protocol.ended.addCallback(stopped)

    def _kill(self, protocol: SpawnerProtocol) -> None:
        self.log.warn("local spawner did not finish within {t} s; terminating it", t=self.stop_timeout)
        try:
            protocol.transport.signalProcess("TERM")
        except Exception:
            pass

    # -- deliveries -------------------------------------------------------------

    def deliver(self, job: DeliveryJob) -> "Deferred[list[DeliveryResult]]":
        if len(job.recipients) == 1:
            # the usual batch (one recipient): its result as a list, as gatherResults would give it,
            # without a DeferredList for one Deferred
            return self._deliver_one(job, job.recipients[0]).addCallbacks(
                _as_list, lambda f: _internal_error(Failure(defer.FirstError(f, 0)), 1))
        results = [self._deliver_one(job, recipient) for recipient in job.recipients]
        return defer.gatherResults(results, consumeErrors=True).addErrback(_internal_error, len(job.recipients))

    def _deliver_one(self, job: DeliveryJob, recipient: str) -> "Deferred[DeliveryResult]":
        protocol = self.protocol
        if protocol is None or self._stopping:
            return defer.succeed(DeliveryResult("Z", NOT_RUNNING))
        slot = self._next_slot
        self._next_slot += 1
        d: Deferred[DeliveryResult] = Deferred()
        self._pending[slot] = (d, job, recipient)
        request = DeliveryRequest(
            slot, os.path.abspath(job.message_path), job.sender, recipient, self.reader.current.defaultdelivery
        )
        try:
            data = request.encode()
        except RecordError as e:
            del self._pending[slot]
            return defer.succeed(DeliveryResult("Z", f"Local delivery request refused: {e}. (#4.3.0)\n"))
        protocol.requests.write(data)
        return d

    def _bad_report(self, record: dict[str, Any], error: RecordError) -> None:
        """A record from the spawner that is no hello and no report: its delivery (if known) is deferred."""
        slot = record.get("slot")
        entry = self._pending.pop(slot, None) if isinstance(slot, int) else None
        if entry is None:
            self.log.error("local spawner sent a bad record ({error}): {record!r}", error=str(error), record=record)
            return
        entry[0].callback(DeliveryResult("Z", f"Local delivery spawner sent a bad report: {error}. (#4.3.0)\n"))

    def _report(self, report: DeliveryReport) -> None:
        entry = self._pending.pop(report.slot, None)
        if entry is None:
            self.log.error("local spawner reported an unknown slot: {report!r}", report=report)
            return
        d, job, recipient = entry
        if report.status != "K":
            if report.needs_root:
                self.log.warn(
                    "{job}: local delivery to {rcpt} needs another uid but pymta-send is not root: deferred",
                    job=job.about(recipient), message_id=job.message_id, rcpt=recipient,
                )
            d.callback(DeliveryResult(report.status, report.output))
            return
        if not report.forwards:
            d.callback(DeliveryResult("K", report.text()))
            return
        output = report.output
        forwarded = self._forward(job, recipient, report.newsender, list(report.forwards), report.uid)

        def queued(qp: int) -> DeliveryResult:
            return DeliveryResult("K", f"{report.text()}qp {qp}\n")

        def refused(failure: Failure) -> DeliveryResult:
            if failure.check(QueueRefused):
                error = failure.value
                return DeliveryResult("D" if error.permanent else "Z", f"{output}Unable to forward message: {error.text}.\n")
            self.log.failure("{job}: forwarding for {rcpt} failed", failure, job=job.about(recipient),
                             message_id=job.message_id, rcpt=recipient)
            return DeliveryResult("Z", f"{output}Unable to forward message: {failure.getErrorMessage()}. (#4.3.0)\n")

        forwarded.addCallbacks(queued, refused).chainDeferred(d)

    def _forward(self, job: DeliveryJob, recipient: str, newsender: str, forwards: list[str], uid: int | None) -> "Deferred[int]":
        """Queue Delivered-To + the message to C{forwards}; fires with the qp number."""
        local, domain = split_address(recipient)
        origin = f"by uid {uid}" if uid is not None else "by alias"
        try:
            writer = self.sink.open_message(newsender, forwards, origin=origin, uid=uid)
        except QueueRefused:
            return defer.fail()
        except Exception as e:
            return defer.fail(QueueRefused(f"cannot open a queue writer: {e} (#4.3.0)"))
        try:
            writer.write(dtline(local, domain))
            with open(job.message_path, "rb") as f:
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    writer.write(chunk)
        except OSError as e:
            writer.abort()
            return defer.fail(QueueRefused(f"cannot read the queued message: {e.strerror} (#4.3.0)"))
        except Exception as e:
            writer.abort()
            return defer.fail(QueueRefused(f"{e} (#4.3.0)"))
        return writer.finish().addCallback(lambda receipt: receipt.qp)
