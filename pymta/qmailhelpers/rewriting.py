# -*- test-case-name: tests.qmailhelpers.test_dotforward -*-
"""
qmail-inject's address completion for the forwarding helpers: the
L{pymta.inject.rewrite.Rewriter} of a root's C{defaulthost},
C{defaultdomain} and C{plusdomain} (read once per helper run).  A control
file that cannot be read ends the helper with 111.
"""

from __future__ import annotations

from functools import lru_cache

from pymta.inject.rewrite import Rewriter, RewriteConfigError
from pymta.qmailhelpers.common import TEMPORARY, Fatal

__all__ = ["root_rewriter"]


@lru_cache(maxsize=4)
def root_rewriter(root: str) -> Rewriter:
    """The completion rules of C{root}/control; L{Fatal} (111) when they cannot be read."""
    from pymta.control import ControlError, load_controls

    try:
        controls = load_controls(root)
        return Rewriter(controls.defaulthost, controls.defaultdomain, controls.plusdomain)
    except (ControlError, RewriteConfigError) as e:
        raise Fatal(TEMPORARY, f"unable to read the control files of {root}: {e}") from None
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to read {e.filename or root + '/control'}: {e.strerror}") from None
