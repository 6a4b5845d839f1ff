# -*- test-case-name: tests.queue.test_tap -*-
"""
C{twistd pymta-send --root DIR}: the queue manager as a twistd plugin.

With C{--no-delivery} every recipient is deferred (kept in the queue)
instead of being handed to the local and remote channels; useful to
inspect a queue or to run the scheduler alone.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from twisted.application.service import IService
from twisted.python import usage

from pymta.configcheck.startup import checked_reader
from pymta.control import ControlError, ControlReader, default_root
from pymta.interfaces import Channel, MessageSink
from pymta.monitoring import METRICS_OPTION, attach_monitoring, check_metrics_option, daemon_metrics
from pymta.pidfilecheck import refuse_unsafe_pid_file
from pymta.privileges import RootDroppingService
from pymta.queue.service import build_send_service

__all__ = ["Options", "makeService", "installed_channels", "check_queue_root", "parse_stop_timeout"]


def check_queue_root(options: usage.Options) -> None:
    """
    C{--root} (default $PYMTA_ROOT, else /var/pymta) made absolute; a usage
    error unless it holds a queue.  Shared with C{twistd pymta}.
    """
    if options["root"] is None:
        options["root"] = default_root()
    options["root"] = os.path.abspath(options["root"])
    if not os.path.isdir(os.path.join(options["root"], "queue")):
        raise usage.UsageError(f"{options['root']}/queue does not exist; run 'pymta init {options['root']}' first")


def parse_stop_timeout(options: usage.Options) -> None:
    """C{--stop-timeout} as a float, else a usage error.  Shared with C{twistd pymta}."""
    try:
        options["stop-timeout"] = float(options["stop-timeout"])
    except ValueError:
        raise usage.UsageError("--stop-timeout needs a number of seconds") from None


class Options(usage.Options):
    synopsis = "--root DIR [--no-delivery] [--stop-timeout SECONDS]"
    longdesc = "pymta's queue manager (qmail-send): schedules and retries deliveries, sends bounces."

    optParameters = [
        ["root", "r", None, "pymta root directory (default $PYMTA_ROOT, else /var/pymta)"],
        ["stop-timeout", None, "60", "seconds to wait for deliveries in flight when stopping"],
        ["trusted-uid", None, None, "comma-separated uids (smtpd's) allowed to set an origin on the inject socket"],
        METRICS_OPTION,
    ]
    optFlags = [
        ["no-delivery", None, "defer every delivery instead of using the local and remote channels"],
    ]

    def postOptions(self) -> None:
        refuse_unsafe_pid_file(self, "pymta-send")
        check_metrics_option(self)
        check_queue_root(self)
        parse_stop_timeout(self)
        uids: tuple[int, ...] = ()
        if self["trusted-uid"]:
            try:
                uids = tuple(int(u) for u in self["trusted-uid"].split(","))
            except ValueError:
                raise usage.UsageError("--trusted-uid needs numeric uids") from None
        self["trusted-uid"] = uids


def installed_channels(root: str, reader: ControlReader, reactor: Any) -> Callable[[MessageSink], Mapping[str, Channel]]:
    """A channel factory for L{build_send_service}: pymta's local and remote channels."""

    def make(sink: MessageSink) -> Mapping[str, Channel]:
        from pymta.local.channel import LocalChannel
        from pymta.remote.channel import RemoteChannel

        return {"local": LocalChannel(root, reader, sink, reactor), "remote": RemoteChannel(root, reader, reactor=reactor)}

    return make


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    root = options["root"]
    reader = checked_reader(root, "pymta-send")
    channels = None if options["no-delivery"] else installed_channels(root, reader, reactor)
    metrics = daemon_metrics(options)
    try:
        service, _ = build_send_service(
            root, reader, channels, reactor, trusted_uids=options["trusted-uid"], stop_timeout=options["stop-timeout"],
            metrics=metrics,
        )
    except (ValueError, OSError, ControlError) as e:
        raise SystemExit(f"pymta-send: configuration error, not starting: {e}") from None
    top = RootDroppingService(root)
    service.setServiceParent(top)
    attach_monitoring(top, service, "pymta-send", metrics, options["metrics"], reactor)
    top.use_twistd_options(getattr(options, "parent", None))
    return top
