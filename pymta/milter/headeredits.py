# -*- test-case-name: tests.milter.test_headeredits -*-
"""
The header modifications of L{pymta.milter.api} applied to a list of
header fields, pure.  The filter chain uses it so that a filter sees the
header as the filters before it left it (as Postfix shows each filter the
message as edited so far); smtpd may use it to edit the message it queues.
"""

from __future__ import annotations

from typing import Sequence

from pymta.milter.api import AddHeader, ChangeHeader, InsertHeader, Modification

__all__ = ["edit_headers"]


def edit_headers(fields: Sequence[tuple[str, str]], change: Modification) -> list[tuple[str, str]]:
    """C{fields} (name, value) after C{change}; other modifications leave them as they are."""
    edited = list(fields)
    if isinstance(change, AddHeader):
        edited.append((change.name, change.value))
    elif isinstance(change, InsertHeader):
        edited.insert(max(0, min(change.index, len(edited))), (change.name, change.value))
    elif isinstance(change, ChangeHeader):
        wanted = change.name.lower()
        seen = 0
        for position, (name, _) in enumerate(edited):
            if name.lower() == wanted:
                seen += 1
                if seen == max(change.index, 1):
                    if change.value:
                        edited[position] = (name, change.value)
                    else:
                        del edited[position]
                    return edited
        if change.value:
            edited.append((change.name, change.value))
    return edited
