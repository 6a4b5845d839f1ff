# -*- test-case-name: tests.cli.test_report -*-
"""
C{pymta report [--since T] [--until T] [--table NAME]... [--top N] [LOGFILE...]}:
qmailanalog's tables (zoverall, zfailures, zdeferrals, zrecipients,
zsenders, zddist) from pymta-send's log.

Reads the files named (each with its rotated predecessors, see
L{pymta.report.sources}), or standard input when none is named or for
C{-}: C{journalctl -u pymta-send -o cat | pymta report}.  The log is read
as a stream, one line at a time (L{pymta.report.matchup}).

Exit status: 0; 2 for a usage error; 111 when a log file cannot be read.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from typing import Iterable

from pymta.report.logline import LineReader
from pymta.report.matchup import Matchup
from pymta.report.sources import bounded_lines, read_lines, with_rotated
from pymta.report.tables import TABLES, render, table_name
from pymta.report.tally import Tally
from pymta.report.when import parse_when

__all__ = ["main", "report"]


def report(lines: Iterable[str], since: float | None = None, until: float | None = None,
           tables: tuple[str, ...] = tuple(TABLES), top: int | None = None) -> str:
    """The text of the tables named for the log C{lines}."""
    reader = LineReader()
    tally = Tally()
    matchup = Matchup(tally, since, until)
    read = reader.read
    feed = matchup.feed
    for line in lines:
        got = read(line)
        if got is not None:
            feed(*got)
    return render(tally, matchup.finish(), tables, top)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymta report",
        description="qmailanalog's tables from pymta-send's log (standard input when no LOGFILE is named)",
    )
    parser.add_argument("logfiles", nargs="*", metavar="LOGFILE",
                        help="a log file; its rotated files (LOGFILE.1, LOGFILE.2.gz, ...) are read first; - for stdin")
    parser.add_argument("--since", metavar="T", help="count what ended at or after T (2026-05-01T10:00, 7d, @SECONDS)")
    parser.add_argument("--until", metavar="T", help="count what ended before T")
    parser.add_argument("--table", action="append", metavar="NAME",
                        help=f"print only this table (repeatable): {', '.join(TABLES)} (or zoverall, ...)")
    parser.add_argument("--top", type=int, metavar="N", help="at most N rows in the per-reason/recipient/sender tables")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    now = time.time()
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except ValueError as e:
        parser.error(str(e))
    names: list[str] = []
    for given in args.table or TABLES:
        name = table_name(given)
        if name is None:
            parser.error(f"no table {given!r}: choose from {', '.join(TABLES)}")
        names.append(name)
    if args.top is not None and args.top < 1:
        parser.error("--top wants a number of rows, 1 or more")
    files = [f for f in args.logfiles if f != "-"]
    lines: Iterable[str]
    if not args.logfiles or "-" in args.logfiles:
        if files:
            parser.error("read either standard input (-) or files, not both")
        lines = bounded_lines(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    else:
        lines = read_lines(with_rotated(files))
    try:
        text = report(lines, since, until, tuple(names), args.top)
    except OSError as e:
        sys.stderr.write(f"pymta report: fatal: unable to read {e.filename}: {e.strerror}\n")
        return 111
    sys.stdout.write(text)
    return 0
