# -*- test-case-name: tests.local.test_spawner_review -*-
"""
C{control/defaultdelivery} as the root spawner reads it for itself.

The delivery instructions for a user without a C{.qmail} file run as that
user.  qmail gives them to its root spawner on the command line, never
through qmail-send; pymta's spawner likewise reads the control file itself
(re-read whenever its size, mtime or inode change) instead of trusting the
text its parent, the queue manager running as the mail uid, sends along -
otherwise whoever controls that uid could run any command as any user.
"""

from __future__ import annotations

import os

from pymta.local.errors import DeliveryFailure

__all__ = ["DefaultDelivery", "DEFAULT_INSTRUCTIONS"]

#: qmail's and pymta's default when the control file is absent
DEFAULT_INSTRUCTIONS = "./Maildir/\n"


class DefaultDelivery:
    """The current text of C{ROOT/control/defaultdelivery}, in the form L{pymta.control} gives it."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "control", "defaultdelivery")
        self._stamp: tuple[int, int, int] | None = None
        self._text = DEFAULT_INSTRUCTIONS

    def current(self) -> str:
        """The instructions; raises a temporary L{DeliveryFailure} when the file cannot be used."""
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._stamp = None
            self._text = DEFAULT_INSTRUCTIONS
            return self._text
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to read control/defaultdelivery: {e.strerror}. (#4.3.0)") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            self._text = self._read()
            self._stamp = stamp
        return self._text

    def _read(self) -> str:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return DEFAULT_INSTRUCTIONS
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to read control/defaultdelivery: {e.strerror}. (#4.3.0)") from None
        if b"\0" in data:
            raise DeliveryFailure.temporary("Trouble reading control/defaultdelivery: NUL byte. (#4.3.0)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DeliveryFailure.temporary("Trouble reading control/defaultdelivery: not valid UTF-8. (#4.3.0)") from None
        kept = [line.rstrip(" \t\r") for line in text.split("\n")] if text else []
        while kept and not kept[-1]:
            kept.pop()
        return "\n".join(kept) + "\n" if kept else DEFAULT_INSTRUCTIONS
