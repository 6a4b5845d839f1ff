# -*- test-case-name: tests.report.test_tables -*-
"""
qmailanalog's tables as plain text: the same names and column meanings
(zoverall, zfailures, zdeferrals, zrecipients, zsenders, zddist), pymta's
layout: a title, a line saying what the columns are, then right-aligned
numbers and the name last.  Delays are in seconds.
"""

from __future__ import annotations

from typing import Callable, Sequence

from pymta.report.logline import DEFERRAL, FAILURE, SUCCESS
from pymta.report.matchup import Unmatched
from pymta.report.tally import DDIST_LIMITS, ReasonRow, Tally

__all__ = ["TABLES", "render", "table_name"]


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def _ratio(total: float, count: int) -> str:
    return _s(total / count) if count else "-"


def _columns(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    """Right-aligned columns, the last one (a name) left-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.rjust(w) for cell, w in zip(r[:-1], widths)), r[-1]]).rstrip()
        for r in [header, *rows]
    ]


def _limited(rows: list[Sequence[str]], top: int | None) -> tuple[list[Sequence[str]], str | None]:
    if top is None or len(rows) <= top:
        return rows, None
    return rows[:top], f"... and {len(rows) - top} more (--top)"


def overall(t: Tally, u: Unmatched, top: int | None = None) -> str:
    o = t.overall
    attempts = sum(o.attempts.values())
    span = (u.last - u.first) if u.first is not None and u.last is not None else 0.0
    lines = [
        "Basic statistics (zoverall)",
        "",
        f"Completed messages: {o.messages}",
        f"Recipients for completed messages: {o.recipients}",
        f"Total delivery attempts for completed messages: {o.message_attempts}",
        f"Average delivery attempts per completed message: {_ratio(o.message_attempts, o.messages)}",
        f"Bytes in completed messages: {o.bytes}",
        f"Bytes weighted by success: {o.bytes_by_success}",
        f"Average message qtime (s): {_ratio(o.qtime, o.messages)}",
        f"Maximum message qtime (s): {_s(o.qtime_max)}",
        "",
        f"Total delivery attempts: {attempts}",
        f"  success: {o.attempts[SUCCESS]}",
        f"  failure: {o.attempts[FAILURE]}",
        f"  deferral: {o.attempts[DEFERRAL]}",
        f"Total ddelay (s): {_s(o.ddelay)}",
        f"Average ddelay per success (s): {_ratio(o.ddelay, o.ddelay_count)}",
        f"Maximum ddelay (s): {_s(o.ddelay_max)}",
        f"Total xdelay (s): {_s(o.xdelay)}",
        f"Average xdelay per delivery attempt (s): {_ratio(o.xdelay, attempts)}",
        f"Maximum xdelay (s): {_s(o.xdelay_max)}",
        f"Time span (days): {span / 86400:.5f}",
        f"Average concurrency: {o.xdelay / span:.4f}" if span else "Average concurrency: -",
        f"Bounces queued: {u.bounces}",
        f"Messages deleted by pymta ctl delete (not completed): {u.deleted}",
        "",
        "Not joined (the log starts or ends in the middle, or lines are missing):",
        f"  delivery results without their start: {u.results_without_start}",
        f"  deliveries started without a result: {u.starts_without_result}",
        f"  messages ended without their info line: {u.ends_without_info}",
        f"  messages still in the queue at the end: {u.open_messages}",
    ]
    return "\n".join(lines) + "\n"


def _reasons(title: str, rows: dict[str, ReasonRow], top: int | None) -> str:
    ranked = sorted(rows.items(), key=lambda kv: (-kv[1].deliveries, kv[0]))
    cells: list[Sequence[str]] = [(str(r.deliveries), _s(r.xdelay), reason) for reason, r in ranked]
    shown, more = _limited(cells, top)
    lines = [title, "del: deliveries with this reason; xdelay: their total xdelay (s)", "",
             *_columns(("del", "xdelay", "reason"), shown)]
    return "\n".join(lines + ([more] if more else [])) + "\n"


def failures(t: Tally, u: Unmatched, top: int | None = None) -> str:
    return _reasons("Reasons for failure (zfailures)", t.reasons[FAILURE], top)


def deferrals(t: Tally, u: Unmatched, top: int | None = None) -> str:
    return _reasons("Reasons for deferral (zdeferrals)", t.reasons[DEFERRAL], top)


def recipients(t: Tally, u: Unmatched, top: int | None = None) -> str:
    ranked = sorted(t.recipients.items(), key=lambda kv: (-kv[1].messages, -kv[1].tries, kv[0]))
    cells: list[Sequence[str]] = [
        (str(r.sbytes), str(r.messages), str(r.tries), _s(r.xdelay), f"{channel}.{address}")
        for (channel, address), r in ranked
    ]
    shown, more = _limited(cells, top)
    lines = [
        "Recipients (zrecipients)",
        "sbytes: bytes delivered to it; mess: messages delivered to it;",
        "tries: delivery attempts; xdelay: their total xdelay (s)",
        "",
        *_columns(("sbytes", "mess", "tries", "xdelay", "recipient"), shown),
    ]
    return "\n".join(lines + ([more] if more else [])) + "\n"


def senders(t: Tally, u: Unmatched, top: int | None = None) -> str:
    ranked = sorted(t.senders.items(), key=lambda kv: (-kv[1].messages, -kv[1].bytes, kv[0]))
    cells: list[Sequence[str]] = [
        (str(r.messages), str(r.bytes), str(r.sbytes), str(r.rbytes), str(r.recipients), str(r.tries),
         _s(r.xdelay), f"<{address}>")
        for address, r in ranked
    ]
    shown, more = _limited(cells, top)
    lines = [
        "Senders (zsenders)",
        "mess: completed messages; bytes: their bytes; sbytes: bytes delivered (size times successes);",
        "rbytes: size times recipients; recips: their recipients; tries: delivery attempts; xdelay: their total (s)",
        "",
        *_columns(("mess", "bytes", "sbytes", "rbytes", "recips", "tries", "xdelay", "sender"), shown),
    ]
    return "\n".join(lines + ([more] if more else [])) + "\n"


def _limit_name(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def ddist(t: Tally, u: Unmatched, top: int | None = None) -> str:
    total = sum(t.ddist)
    cells: list[Sequence[str]] = []
    running = 0
    for i, count in enumerate(t.ddist):
        if running == total and cells:
            break
        running += count
        within = _limit_name(DDIST_LIMITS[i]) if i < len(DDIST_LIMITS) else "more"
        percent = f"{100 * running / total:.2f}" if total else "-"
        cells.append((within, str(count), str(running), percent, ""))
    lines = [
        "Distribution of ddelays of successful deliveries (zddist)",
        "within: ddelay at most; del: successes in this row; cumul: successes so far; cumul%: their share",
        "",
        *_columns(("within", "del", "cumul", "cumul%", ""), cells),
    ]
    return "\n".join(lines) + "\n"


#: every table, in the order C{pymta report} prints them
TABLES: dict[str, Callable[[Tally, Unmatched, int | None], str]] = {
    "overall": overall,
    "failures": failures,
    "deferrals": deferrals,
    "recipients": recipients,
    "senders": senders,
    "ddist": ddist,
}


def table_name(name: str) -> str | None:
    """The table a name means: C{overall} or qmailanalog's C{zoverall}; None when there is none."""
    name = name.lower()
    if name.startswith("z") and name[1:] in TABLES:
        name = name[1:]
    return name if name in TABLES else None


def render(t: Tally, u: Unmatched, names: Sequence[str] = tuple(TABLES), top: int | None = None) -> str:
    return "\n".join(TABLES[name](t, u, top) for name in names)
