# -*- test-case-name: tests.local.test_spawnrecords -*-
"""
The lines between the local spawner's child pool (L{pymta.local.childpool})
and a delivery child (L{pymta.local.deliverychild}) over their socket pair:
one JSON object per line, bounded by L{MAX_LINE}.

Spawner to child, a L{LocalDelivery} with the open message file attached
(C{SCM_RIGHTS}, one descriptor)::

    {"sender": "a@b", "local": "joe-x", "domain": "example.org",
     "user": {"user": "joe", "uid": 4242, "gid": 4242, "home": "/home/joe",
              "dash": "-", "ext": "x", "source": "assign"},
     "defaultdelivery": "./Maildir/\\n"}

Child to spawner, its L{LocalOutcome}::

    {"status": "K", "output": "", "did": [1, 0, 0], "forwards": [], "newsender": "a@b"}

The child runs as the recipient, so the spawner trusts nothing of the
outcome but its shape: L{parse_outcome} refuses anything else
(L{RecordError}), and the spawner takes slot and uid from its own job.
"""

from __future__ import annotations

import json
from typing import Any

from pymta.local.deliver import LocalDelivery, LocalOutcome
from pymta.local.getpw import LocalUser
from pymta.local.spawnrecords import MAX_TEXT, STATUSES, DeliveryCounts, RecordError

__all__ = ["encode_delivery", "parse_delivery", "encode_outcome", "parse_outcome", "MAX_LINE"]

MAX_LINE = 16 * 1024 * 1024
_USER_TEXT = ("user", "home", "dash", "ext", "source")


def _line(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n"
    if len(data) > MAX_LINE:
        raise RecordError("line over the limit")
    return data


def _object(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise RecordError("line over the limit")
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise RecordError(f"bad JSON: {e}") from None
    if not isinstance(obj, dict):
        raise RecordError("not a JSON object")
    return obj


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise RecordError(f"bad {name}")
    return value


def encode_delivery(delivery: LocalDelivery) -> bytes:
    u = delivery.user
    return _line(
        {
            "sender": delivery.sender,
            "local": delivery.local,
            "domain": delivery.domain,
            "user": {"user": u.user, "uid": u.uid, "gid": u.gid, "home": u.home, "dash": u.dash, "ext": u.ext,
                     "source": u.source},
            "defaultdelivery": delivery.defaultdelivery,
        }
    )


def parse_delivery(line: bytes) -> LocalDelivery:
    obj = _object(line)
    user = obj.get("user")
    if not isinstance(user, dict):
        raise RecordError("bad user")
    uid, gid = user.get("uid"), user.get("gid")
    if type(uid) is not int or type(gid) is not int or uid < 0 or gid < 0:
        raise RecordError("bad uid or gid")
    texts = [_text(user, name) for name in _USER_TEXT]
    local_user = LocalUser(texts[0], uid, gid, *texts[1:])
    return LocalDelivery(_text(obj, "sender"), _text(obj, "local"), _text(obj, "domain"), local_user,
                         _text(obj, "defaultdelivery"))


def encode_outcome(outcome: LocalOutcome) -> bytes:
    return _line(
        {
            "status": outcome.status,
            "output": outcome.output,
            "did": list(outcome.did) if outcome.did is not None else None,
            "forwards": list(outcome.forwards),
            "newsender": outcome.newsender,
        }
    )


def parse_outcome(line: bytes) -> LocalOutcome:
    obj = _object(line)
    status = obj.get("status")
    if status not in STATUSES:
        raise RecordError(f"status {status!r}")
    output = obj.get("output")
    if not isinstance(output, str):
        raise RecordError("bad output")
    forwards = obj.get("forwards")
    if not isinstance(forwards, list) or not all(isinstance(f, str) and len(f) <= MAX_TEXT for f in forwards):
        raise RecordError("bad forwards")
    did = obj.get("did")
    counts = DeliveryCounts.parse(did) if status == "K" else None
    return LocalOutcome(status, output, counts, forwards, _text(obj, "newsender"))
