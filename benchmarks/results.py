"""
One line per figure the issue-19 loads compare, printed by every benchmark
script and collected by benchmarks/ahead_of_postfix.py:

    RESULT <load> <metric> pymta=<v> postfix=<v> ratio=<r> goal=<g|-> met=<yes|no|->

C{load} and C{metric} are single words (no blanks); a value is a number or
C{-} (not measured).  The ratio is oriented so that above 1 pymta does
better: pymta/postfix for a rate, postfix/pymta for a time or a size.  The
goal is C{-} (none), a number (the ratio must be at least that), or
C{pymta<=X} (pymta's own figure must be at most X: an absolute bound, such
as bytes per deferred message or a stall factor); C{met} follows from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Result", "format_result", "parse_result", "result_line", "results_in", "table"]

PREFIX = "RESULT"


@dataclass(frozen=True)
class Result:
    """One compared figure; None is a value not measured."""

    load: str
    metric: str
    pymta: float | None
    postfix: float | None
    ratio: float | None
    goal: str  # "-", "1.3", "pymta<=300"
    met: str  # "yes", "no", "-"

    def check(self) -> None:
        for word in (self.load, self.metric, self.goal):
            if not word or any(c.isspace() for c in word) or "=" in word.replace("<=", ""):
                raise ValueError(f"not one word: {word!r}")
        if self.met not in ("yes", "no", "-"):
            raise ValueError(f"met is yes, no or -, not {self.met!r}")
        _goal_test(self.goal)


def _goal_test(goal: str) -> tuple[str, float] | None:
    """("ratio", g) for a number, ("pymta", x) for pymta<=x, None for -."""
    if goal == "-":
        return None
    if goal.startswith("pymta<="):
        return "pymta", float(goal[len("pymta<="):])
    return "ratio", float(goal)


def _met(goal: str, pymta: float | None, ratio: float | None) -> str:
    test = _goal_test(goal)
    if test is None:
        return "-"
    kind, bound = test
    value = ratio if kind == "ratio" else pymta
    if value is None:
        return "-"
    return "yes" if (value >= bound if kind == "ratio" else value <= bound) else "no"


def result_line(load: str, metric: str, pymta: float | None, postfix: float | None,
                higher_is_better: bool = True, goal: str = "-") -> Result:
    """A L{Result} with its ratio (oriented: above 1, pymta does better) and C{met} worked out."""
    ratio = None
    if pymta is not None and postfix is not None:
        over, under = (pymta, postfix) if higher_is_better else (postfix, pymta)
        ratio = over / under if over > 0 and under > 0 else None  # a ratio of nothing (or of noise below 0) means nothing
    result = Result(load, metric, pymta, postfix, ratio, goal, _met(goal, pymta, ratio))
    result.check()
    return result


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def format_result(result: Result) -> str:
    """The RESULT line of C{result} (no newline)."""
    result.check()
    return (f"{PREFIX} {result.load} {result.metric} pymta={_number(result.pymta)} postfix={_number(result.postfix)}"
            f" ratio={_number(result.ratio)} goal={result.goal} met={result.met}")


def print_result(load: str, metric: str, pymta: float | None, postfix: float | None,
                 higher_is_better: bool = True, goal: str = "-") -> None:
    """Prints one RESULT line (see L{result_line}), flushed so a driver reading the pipe sees it at once."""
    print(format_result(result_line(load, metric, pymta, postfix, higher_is_better, goal)), flush=True)


def parse_result(line: str) -> Result:
    """The L{Result} of one RESULT line; ValueError when it is not one."""
    words = line.split()
    if len(words) != 8 or words[0] != PREFIX:
        raise ValueError(f"not a RESULT line: {line!r}")
    fields = {}
    for word, key in zip(words[3:], ("pymta", "postfix", "ratio", "goal", "met")):
        name, sep, value = word.partition("=")
        if name != key or not sep:
            raise ValueError(f"expected {key}=..., got {word!r}")
        fields[key] = value

    def number(text: str) -> float | None:
        return None if text == "-" else float(text)

    result = Result(words[1], words[2], number(fields["pymta"]), number(fields["postfix"]), number(fields["ratio"]),
                    fields["goal"], fields["met"])
    result.check()
    return result


def results_in(text: str) -> list[Result]:
    """Every RESULT line in C{text} (a script's output), in order; other lines are skipped."""
    return [parse_result(line.strip()) for line in text.splitlines() if line.startswith(PREFIX + " ")]


def table(results: list[Result]) -> str:
    """The driver's table: load, metric, pymta, Postfix, ratio, goal, met; one row a result."""
    head = ("load", "metric", "pymta", "Postfix", "ratio", "goal", "met")
    rows = [head] + [(r.load, r.metric, _number(r.pymta), _number(r.postfix), _number(r.ratio), r.goal, r.met)
                     for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]
    met = [r.met for r in results]
    lines.append(f"goals met: {met.count('yes')} of {met.count('yes') + met.count('no')}")
    return "\n".join(lines)
