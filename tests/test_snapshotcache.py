"""L{pymta.snapshotcache.PerSnapshot}: parsed once per controls snapshot; errors are not kept."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError
from pymta.snapshotcache import PerSnapshot


class PerSnapshotTests(SynchronousTestCase):
    def test_parsed_once_per_snapshot(self) -> None:
        calls: list[Any] = []

        def parse(controls: Any) -> int:
            calls.append(controls)
            return len(calls)

        cache: PerSnapshot[int] = PerSnapshot(parse)
        first, second = object(), object()
        self.assertEqual([cache(first), cache(first), cache(second), cache(second), cache(first)],  # type: ignore[arg-type]
                         [1, 1, 2, 2, 3])
        self.assertEqual(calls, [first, second, first])

    def test_an_error_is_not_kept(self) -> None:
        answers: list[Any] = [ControlError("/r/control/x", 1, "bad"), 7]

        def parse(controls: Any) -> int:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return int(answer)

        cache: PerSnapshot[int] = PerSnapshot(parse)
        snapshot = object()
        self.assertRaises(ControlError, cache, snapshot)
        self.assertEqual(cache(snapshot), 7)  # type: ignore[arg-type]
