# -*- test-case-name: tests.local.test_spawnrecords -*-
"""
The records between pymta-send's local channel (L{pymta.local.channel})
and the local delivery spawner (L{pymta.local.spawner}), one module for
both ends.  Each record is a frozen dataclass with C{check} (every field
within its bounds), C{encode} (the framed bytes, L{pymta.local.wire}: a
netstring holding one JSON object) and C{parse} (from the decoded object;
L{RecordError} when anything is off, never another exception).

Parent to spawner, a L{DeliveryRequest} per recipient::

    {"slot": 7, "message": "/var/pymta/queue/mess/3/1234", "sender": "a@b",
     "recipient": "joe-x@example.org", "defaultdelivery": "./Maildir/\\n"}

Spawner to parent: first a L{SpawnerHello}, C{{"hello": 1, "pid": P,
"uid": U}}, then one L{DeliveryReport} per request::

    {"slot": 7, "status": "K", "output": "...", "did": [1, 0, 0],
     "forwards": [], "newsender": "a@b", "uid": 4242, "needsroot": false}

C{did} (L{DeliveryCounts}) is null unless the status is C{K}; C{forwards}
are still to be queued by the parent (as qmail-local hands them to
qmail-queue, after every other line of the C{.qmail} file succeeded);
C{needsroot} marks a deferral because the spawner is not root and the
recipient is another uid.  C{output} is capped at L{OUTPUT_CAP} bytes as
qmail-lspawn caps qmail-local's report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pymta.local.wire import encode_record

__all__ = [
    "DeliveryCounts",
    "DeliveryRequest",
    "DeliveryReport",
    "SpawnerHello",
    "RecordError",
    "BadRequest",
    "Status",
    "cap_output",
    "parse_spawner_record",
    "OUTPUT_CAP",
    "TOO_LONG",
]

Status = Literal["K", "Z", "D"]
STATUSES: tuple[Status, ...] = ("K", "Z", "D")
OUTPUT_CAP = 3000
TOO_LONG = "\nError report too long, sorry.\n"
MAX_ID = 2**63 - 1  # slots, pids, uids
MAX_PATH = 4096
MAX_TEXT = 64 * 1024  # an address, NEWSENDER, control/defaultdelivery
MAX_FORWARDS = 100_000  # forward addresses of one delivery


class RecordError(ValueError):
    """A decoded record is not the record its place on the pipe calls for."""


class BadRequest(RecordError):
    """A request the spawner cannot take: C{slot} (None when even that is missing) and the report text."""

    def __init__(self, slot: int | None, text: str) -> None:
        super().__init__(text)
        self.slot = slot
        self.text = text


def cap_output(text: str) -> str:
    """qmail-lspawn's cap: at most L{OUTPUT_CAP} bytes, the tail replaced by a notice."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= OUTPUT_CAP:
        return text
    return data[: OUTPUT_CAP - len(TOO_LONG)].decode("utf-8", "ignore") + TOO_LONG


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_ID


def _text_within(value: object, limit: int) -> bool:
    """A str of at most C{limit} bytes in UTF-8 (a code point takes at most four: a short one is not encoded)."""
    if not isinstance(value, str):
        return False
    return len(value) <= limit >> 2 or len(value.encode("utf-8", "surrogateescape")) <= limit


class DeliveryCounts(NamedTuple):
    """What a successful delivery did: mbox/Maildir files, forwards, programs."""

    files: int
    forwards: int
    programs: int

    def text(self) -> str:
        """qmail-local's last report line, C{did F+W+P} (the only place it is written)."""
        return f"did {self.files}+{self.forwards}+{self.programs}\n"

    @classmethod
    def parse(cls, value: object) -> "DeliveryCounts":
        if not isinstance(value, list) or len(value) != 3:
            raise RecordError("did is not three counts")
        files, forwards, programs = value
        if not (_is_id(files) and _is_id(forwards) and _is_id(programs)):
            raise RecordError("did is not three counts")
        return cls(files, forwards, programs)


@dataclass(frozen=True)
class DeliveryRequest:
    """Deliver the queued C{message} (a path in the queue) from C{sender} to C{recipient}."""

    slot: int
    message: str
    sender: str
    recipient: str
    defaultdelivery: str

    def check(self) -> None:
        """L{BadRequest} unless every field is within its bounds."""
        if not _is_id(self.slot):
            raise BadRequest(None, "request without a slot number")
        for name, value, limit in (("message", self.message, MAX_PATH), ("sender", self.sender, MAX_TEXT),
                                   ("recipient", self.recipient, MAX_TEXT),
                                   ("defaultdelivery", self.defaultdelivery, MAX_TEXT)):
            if not isinstance(value, str):
                raise BadRequest(self.slot, f"Internal error: request has no {name}. (#5.3.0)")
            if len(value) > limit >> 2 and not _text_within(value, limit):  # a short text is within (see there)
                raise BadRequest(self.slot, f"Internal error: request field {name} is too long. (#5.3.0)")

    def encode(self) -> bytes:
        self.check()
        return encode_record(
            {"slot": self.slot, "message": self.message, "sender": self.sender, "recipient": self.recipient,
             "defaultdelivery": self.defaultdelivery}
        )

    @classmethod
    def parse(cls, record: dict[str, Any]) -> "DeliveryRequest":
        """The request in C{record}; L{BadRequest} (with the slot when there is one) otherwise."""
        fields: list[Any] = [record.get(name) for name in ("slot", "message", "sender", "recipient", "defaultdelivery")]
        request = cls(*fields)  # of any type so far: check() tells
        request.check()
        return request


@dataclass(frozen=True)
class SpawnerHello:
    """The spawner's first record: it runs, as C{pid}, with uid C{uid}."""

    pid: int
    uid: int

    def check(self) -> None:
        if not (_is_id(self.pid) and _is_id(self.uid)):
            raise RecordError("hello without a pid and uid")

    def encode(self) -> bytes:
        self.check()
        return encode_record({"hello": 1, "pid": self.pid, "uid": self.uid})

    @classmethod
    def parse(cls, record: dict[str, Any]) -> "SpawnerHello":
        if record.get("hello") != 1:
            raise RecordError("not a hello record")
        pid: Any = record.get("pid")
        uid: Any = record.get("uid")
        hello = cls(pid, uid)  # of any type so far: check() tells
        hello.check()
        return hello


@dataclass(frozen=True)
class DeliveryReport:
    """
    How the delivery of request C{slot} ended: C{status} K/Z/D and the
    C{output} (capped: build reports with L{report}); for K, C{did} and the
    C{forwards} to queue with sender C{newsender}; C{uid} the recipient's
    (None before the recipient was known); C{needs_root} for a deferral
    because the spawner is not root.
    """

    slot: int
    status: Status
    output: str
    did: DeliveryCounts | None = None
    forwards: tuple[str, ...] = ()
    newsender: str = ""
    uid: int | None = None
    needs_root: bool = False

    @classmethod
    def report(
        cls,
        slot: int,
        status: Status,
        output: str,
        did: DeliveryCounts | None = None,
        forwards: tuple[str, ...] = (),
        newsender: str = "",
        uid: int | None = None,
        needs_root: bool = False,
    ) -> "DeliveryReport":
        """A report with C{output} capped; C{did} and C{forwards} kept for K only."""
        if status != "K":
            did, forwards = None, ()
        elif did is None:
            did = DeliveryCounts(0, 0, 0)
        return cls(slot, status, cap_output(output), did, tuple(forwards), newsender, uid, needs_root)

    def check(self) -> None:
        if not _is_id(self.slot):
            raise RecordError("report without a slot number")
        if self.status not in STATUSES:
            raise RecordError(f"report with status {self.status!r}")
        if not _text_within(self.output, OUTPUT_CAP):
            raise RecordError("report output over the cap")
        if (self.did is not None) != (self.status == "K"):
            raise RecordError("did goes with status K, and only with it")
        if self.forwards and self.status != "K":
            raise RecordError("forwards go with status K only")
        if self.forwards and (len(self.forwards) > MAX_FORWARDS
                              or not all(_text_within(f, MAX_TEXT) for f in self.forwards)):
            raise RecordError("bad forwards")
        if not _text_within(self.newsender, MAX_TEXT):
            raise RecordError("bad newsender")
        if self.uid is not None and not _is_id(self.uid):
            raise RecordError("bad uid")
        if self.needs_root and self.status != "Z":
            raise RecordError("needsroot goes with status Z only")

    def encode(self) -> bytes:
        self.check()
        return encode_record(
            {"slot": self.slot, "status": self.status, "output": self.output,
             "did": list(self.did) if self.did is not None else None, "forwards": list(self.forwards),
             "newsender": self.newsender, "uid": self.uid, "needsroot": self.needs_root}
        )

    @classmethod
    def parse(cls, record: dict[str, Any]) -> "DeliveryReport":
        status: Any = record.get("status")
        if status not in STATUSES:
            raise RecordError(f"report with status {status!r}")
        did_value = record.get("did")
        did = DeliveryCounts.parse(did_value) if did_value is not None else None
        forwards = record.get("forwards")
        if not isinstance(forwards, list):
            raise RecordError("forwards is not a list")
        needs_root = record.get("needsroot")
        if not isinstance(needs_root, bool):
            raise RecordError("needsroot is not a boolean")
        slot: Any = record.get("slot")
        output: Any = record.get("output")
        newsender: Any = record.get("newsender")
        uid: Any = record.get("uid")
        # of any type so far: check() tells
        report = cls(slot, status, output, did, tuple(forwards), newsender, uid, needs_root)
        report.check()
        return report

    def text(self) -> str:
        """The result text when nothing is left to forward: the output, and for K C{did F+W+P}."""
        return self.output + (self.did.text() if self.did is not None else "")


def parse_spawner_record(record: dict[str, Any]) -> SpawnerHello | DeliveryReport:
    """A record the spawner sent: its hello or a report; L{RecordError} otherwise."""
    if "hello" in record:
        return SpawnerHello.parse(record)
    return DeliveryReport.parse(record)
