"""
The organisational domain of a name (RFC 7489 section 3.2): its public
suffix plus one label, by the public suffix list that the maintained
C{publicsuffixlist} package ships (updated with its releases).  A name
under no rule of the list has the default rule C{*}: its
top-level label is the suffix (so C{mail.example.test} belongs to
C{example.test}).  The list is read once (about a tenth of a second), on
the first question.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

__all__ = ["org_domain"]

_lock = threading.Lock()
_list: Any = None


def _suffixes() -> Any:
    global _list
    with _lock:
        if _list is None:
            _list = PublicSuffixList()
        return _list


@lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """C{domain}'s organisational domain (lowercase, no final dot)."""
    name = domain.rstrip(".").lower()
    found = _suffixes().privatesuffix(name)
    if found is None:  # a public suffix itself
        return ".".join(name.split(".")[-2:])
    return str(found)
