# -*- test-case-name: tests.queue.test_scheduler -*-
"""
Finishing a message no recipient is left of, as qmail-send does: its
bounce (the failures gathered in C{bounce/ID}) is injected as a new message
first, and only then are the message's own files removed (C{end msg}).
The bounce is QSBMF or RFC 3464's report (L{pymta.queue.dsnreport}), which
also carries the success notices a message's C{dsn/N/ID} holds (known from
memory, L{pymta.queue.dsnbook}: once the report is injected no notice is
due, so a removal tried again never sends them twice).
Also the end of a message that never left C{todo/} (its first attempt
succeeded) and quarantine.

A L{Finisher} does the disk work and the log lines and returns what
happened (L{Finished}); the scheduler moves the message accordingly.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from twisted.internet import defer

from pymta.interfaces import MessageSink
from pymta.queue import bounce as bounces
from pymta.queue.disk import QueueDisk
from pymta.queue.dsnfile import DsnFile, dsn_path, remove_dsn_file
from pymta.queue.dsnreport import notices_due, wants_report, write_report
from pymta.queue.finishfacts import KnownGone
from pymta.queue.qmaillog import QmailLog
from pymta.queue.reasons import remove_reasons
from pymta.queue.sendfiles import QueueFileError, quarantine_message, read_info
from pymta.queue.unlinking import BatchedUnlinker, RecyclableMessage, SpentEnvelope, Unlink, delete_small
from pymta.queue.sendcontext import SendContext

__all__ = ["Outcome", "Finished", "Finisher", "quarantine"]


class Outcome(enum.Enum):
    #: the message's files are removed (C{end msg} logged) or go with the next unlink batch
    REMOVED = "removed"
    #: a failure of the moment: try again after a while
    RETRY = "retry"
    #: moved into C{quarantine/}, or there was nothing left to finish: forget the message
    GONE = "gone"


@dataclass(frozen=True)
class Finished:
    outcome: Outcome
    #: a bounce was injected on the way
    bounced: bool = False


def quarantine(disk: QueueDisk, log: QmailLog, message_id: int, reason: str) -> None:
    """Move every file of a message nothing can deliver into C{quarantine/} and say why."""
    try:
        where = quarantine_message(disk.layout, message_id)
    except OSError as e:
        log.alert(f"unable to quarantine msg {message_id} ({reason}): {e.strerror}")
        return
    log.warning(f"msg {message_id} quarantined in {os.path.relpath(where, disk.layout.queuedir)}: {reason}")


class Finisher:
    """Bounce and remove finished messages (see the module docstring)."""

    def __init__(self, ctx: SendContext, sink: MessageSink | None, unlinker: BatchedUnlinker) -> None:
        self.disk = ctx.disk
        self.controls = ctx.controls
        self.sink = sink
        self.clock = ctx.clock
        self.log = ctx.log
        self.unlinker = unlinker
        self.dsn = ctx.dsn
        self.facts = ctx.finishing

    def finish(self, message_id: int) -> "Finished | defer.Deferred[Finished]":
        """
        Finish a message whose jobs are all closed: bounce it if it has
        failures, then remove it.  A Deferred when a bounce is being injected.
        """
        layout = self.disk.layout
        known = self.facts.take(message_id)
        # no look at a channel file the last job's close has just removed or looked for
        channel_files = () if known.channel_files else (layout.local(message_id), layout.remote(message_id))
        for path in (*channel_files, layout.todo(message_id)):
            if os.path.exists(path):
                return Finished(Outcome.GONE)
        try:
            sender, birth = read_info(layout, message_id)
        except FileNotFoundError:
            return Finished(Outcome.GONE)
        except QueueFileError as e:
            quarantine(self.disk, self.log, message_id, f"info/{layout.subdir(message_id)}/{message_id}: {e}")
            return Finished(Outcome.GONE)
        except OSError as e:
            self.log.warning(f"unable to read info/{message_id}: {e.strerror}; will try again later")
            return Finished(Outcome.RETRY)
        dsn = self.dsn.get(message_id)
        if not os.path.exists(layout.bounce(message_id)) and not notices_due(bounces.unverp(sender), dsn):
            return Finished(self._remove(message_id, known, recyclable=True))
        envelope = bounces.bounce_envelope(sender, self.controls.current)
        if envelope is not None and not os.path.exists(layout.mess(message_id)):
            quarantine(self.disk, self.log, message_id, "the message file is missing; the bounce cannot quote it")
            return Finished(Outcome.GONE)
        if envelope is None:
            self.log.triple_bounce(message_id)
            self.dsn.notices_sent(message_id)  # nobody to send them to
            return Finished(self._bounce_sent(message_id, known))
        d = self._inject_bounce(message_id, envelope, dsn, birth)

        def injected(qp: int) -> Finished:
            self.log.bounce_msg(message_id, qp)
            self.dsn.notices_sent(message_id)
            return Finished(self._bounce_sent(message_id, known), bounced=True)

        def failed(reason: object) -> Finished:
            self.log.warning("trouble injecting bounce message, will try later")
            return Finished(Outcome.RETRY)

        return d.addCallbacks(injected, failed)

    def _inject_bounce(self, message_id: int, envelope: bounces.BounceEnvelope, dsn: DsnFile | None = None,
                       birth: float = 0.0) -> "defer.Deferred[int]":
        if self.sink is None:
            return defer.fail(RuntimeError("no message sink for bounces"))
        layout = self.disk.layout
        writer = None
        try:
            writer = self.sink.open_message(
                envelope.sender, [envelope.recipient], origin="for bounce", uid=os.getuid(), pid=os.getpid()
            )
            if wants_report(self.controls.current, envelope, dsn, self.log.warning):
                write_report(writer.write, layout, message_id, self.controls.current, envelope, dsn, birth,
                             self.clock.seconds())
            else:
                with open(layout.bounce(message_id), "rb") as failures, open(layout.mess(message_id), "rb") as mess:
                    bounces.compose_bounce(writer.write, envelope, self.controls.current, failures, mess,
                                           self.clock.seconds())
            d = writer.finish()
        except Exception:
            if writer is not None:
                try:
                    writer.abort()
                except Exception:
                    pass
            return defer.fail()
        return d.addCallback(lambda receipt: receipt.qp)

    def _bounce_sent(self, message_id: int, known: KnownGone) -> Outcome:
        try:
            os.unlink(self.disk.layout.bounce(message_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warning(f"unable to unlink bounce/{message_id}: {e.strerror}")
            return Outcome.RETRY
        return self._remove(message_id, known)

    def _remove(self, message_id: int, known: KnownGone, recyclable: bool = False) -> Outcome:
        layout = self.disk.layout
        self.log.end_msg(message_id)
        try:
            # before info/: a reason file never outlives its message (the cleaner catches a failure here)
            if not known.reasons:
                remove_reasons(layout, message_id)
        except OSError as e:
            self.log.warning(f"unable to unlink reason/{layout.subdir(message_id)}/{message_id}: {e.strerror}")
        had_dsn = self.dsn.has_file(message_id)
        if had_dsn:
            try:
                remove_dsn_file(layout, message_id)  # before info/: ids come back, a dsn file must not
            except OSError as e:
                self.log.warning(f"unable to unlink dsn/{layout.subdir(message_id)}/{message_id}: {e.strerror}; "
                                 "will try again later")
                return Outcome.RETRY
            self.dsn.forget(message_id)
        try:
            delete_small(self.disk, layout.info(message_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warning(f"unable to unlink info/{message_id}: {e.strerror}; will try again later")
            return Outcome.RETRY
        mess: Unlink = layout.mess(message_id)
        if recyclable and self.disk.mess_spares is not None:
            # its id may come back once every other name of this message is durably gone
            # (a removed bounce/ file is not, hence only messages that never had one; a dsn file is)
            dirs = tuple(os.path.dirname(p) for p in (layout.info(message_id), layout.local(message_id),
                                                       layout.remote(message_id), layout.intd(message_id),
                                                       layout.todo(message_id)))
            if had_dsn:
                dirs += (os.path.dirname(dsn_path(layout, message_id)),)
            mess = RecyclableMessage(layout.mess(message_id), dirs)
        self.unlinker.later(layout.intd(message_id), mess)
        return Outcome.REMOVED

    def remove_first(self, message_id: int) -> bool:
        """
        Finish a message that never left todo/ (its first attempt succeeded):
        C{todo/ID} is removed at once - what marking the recipient done is for
        a preprocessed message - the envelope and the message file later with
        the other unlinks.  True when it ended (C{end msg} logged).
        """
        layout = self.disk.layout
        try:
            os.unlink(layout.todo(message_id))
        except FileNotFoundError:
            # someone else finished it: its id may already name another message's files
            self.log.warning(f"todo/{message_id} vanished during its first delivery; leaving its files alone")
            return False
        except OSError as e:
            # left alone: the next todo/ scan delivers it again, as qmail does when it cannot mark a delivery
            self.log.warning(f"unable to unlink todo/{message_id}: {e.strerror}; message will be delivered twice!")
            return False
        self.log.end_msg(message_id)
        mess: Unlink = layout.mess(message_id)
        if self.disk.mess_spares is not None:
            mess = RecyclableMessage(layout.mess(message_id), (os.path.dirname(layout.intd(message_id)),
                                                               layout.dir("todo")))
        self.unlinker.later(SpentEnvelope(message_id), mess)
        return True
