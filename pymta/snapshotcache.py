"""
A value read from the control files once per controls snapshot.

The control reader hands out a new L{pymta.control.Controls} object when a
file changed (at start and at each reload); until then the same object
comes back.  L{PerSnapshot} keeps what a parser made of the last snapshot
it saw, so a table such as control/tlsdestinations is parsed once per
reload, not once per delivery.  A parser's error (L{pymta.control.ControlError})
reaches the caller and nothing is kept.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from pymta.control import Controls

__all__ = ["PerSnapshot"]

T = TypeVar("T")


class PerSnapshot(Generic[T]):
    """C{parse(controls)}, computed again only when C{controls} is another snapshot."""

    def __init__(self, parse: Callable[[Controls], T]) -> None:
        self._parse = parse
        self._cached: tuple[Controls, T] | None = None

    def __call__(self, controls: Controls) -> T:
        cached = self._cached
        if cached is None or cached[0] is not controls:
            cached = self._cached = (controls, self._parse(controls))
        return cached[1]
