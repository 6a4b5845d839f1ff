# -*- test-case-name: tests.pop3d.test_rootauth -*-
"""
The request pop3d sends the root mailbox spawner: a login, not a uid.

The spawner decides who and where from its own data (users/passwd or the
checkpassword program), so the request carries only what the client
proved to pop3d, one line, every field bounded::

    OPEN <id> PASS <hex user> <hex password>\\n
    OPEN <id> APOP <hex user> <hex digest> <hex banner timestamp>\\n

  - C{id}: 1 to 20 decimal digits, echoed in the reply;
  - user: 1 to L{MAX_USER} bytes, no NUL, CR, LF or colon;
  - password (USER/PASS and AUTH PLAIN): 1 to L{MAX_SECRET} bytes, no NUL;
  - digest (APOP): 32 hexadecimal digits; timestamp: the banner's
    C{<...>}, 3 to L{MAX_TIMESTAMP} bytes.

Replies: C{OK <id>} with the mailbox child's socket attached, or
C{ERR <id> <text>}.  No Twisted here: the spawner imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LoginRequest", "encode_request", "parse_request", "MAX_REQUEST", "MAX_USER", "MAX_SECRET"]

MAX_USER = 255
MAX_SECRET = 512
MAX_TIMESTAMP = 255
MAX_REQUEST = 4096  # longer than any valid request line
_IDENT = re.compile(rb"\A[0-9]{1,20}\Z")
_HEX = re.compile(rb"\A(?:[0-9a-f]{2})+\Z")
_DIGEST = re.compile(rb"\A[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class LoginRequest:
    """What a client proved: C{kind} C{"PASS"} (password) or C{"APOP"} (digest + timestamp)."""

    kind: str
    user: bytes
    secret: bytes = b""
    timestamp: bytes = b""

    def __repr__(self) -> str:  # never show a password in a log or traceback
        return f"LoginRequest({self.kind}, {self.user!r})"

    def check(self) -> None:
        """Raise L{ValueError} unless every field is within its bounds."""
        if not 1 <= len(self.user) <= MAX_USER or any(c in self.user for c in b"\0\r\n:"):
            raise ValueError("bad user name")
        if self.kind == "PASS":
            if not 1 <= len(self.secret) <= MAX_SECRET or b"\0" in self.secret or self.timestamp:
                raise ValueError("bad password")
        elif self.kind == "APOP":
            if not _DIGEST.match(self.secret.lower()):
                raise ValueError("bad digest")
            ts = self.timestamp
            if not 3 <= len(ts) <= MAX_TIMESTAMP or not (ts.startswith(b"<") and ts.endswith(b">")) or b"\0" in ts:
                raise ValueError("bad timestamp")
        else:
            raise ValueError("bad login kind")


def encode_request(ident: int, login: LoginRequest) -> bytes:
    """The request line (L{ValueError} for a login out of bounds)."""
    login.check()
    fields = [b"OPEN", b"%d" % ident, login.kind.encode("ascii"), login.user.hex().encode(), login.secret.hex().encode()]
    if login.kind == "APOP":
        fields.append(login.timestamp.hex().encode())
    return b" ".join(fields) + b"\n"


def _unhex(field: bytes) -> bytes:
    if not _HEX.match(field):
        raise ValueError("bad hex field")
    return bytes.fromhex(field.decode("ascii"))


def parse_request(line: bytes) -> tuple[bytes, LoginRequest]:
    """C{(id, login)} of a request line without its newline; L{ValueError} if anything is off."""
    if len(line) > MAX_REQUEST:
        raise ValueError("request too long")
    words = line.split(b" ")
    if len(words) < 2 or words[0] != b"OPEN" or not _IDENT.match(words[1]):
        raise ValueError("bad request")
    ident = words[1]
    if len(words) == 5 and words[2] == b"PASS":
        login = LoginRequest("PASS", _unhex(words[3]), _unhex(words[4]))
    elif len(words) == 6 and words[2] == b"APOP":
        login = LoginRequest("APOP", _unhex(words[3]), _unhex(words[4]).lower(), _unhex(words[5]))
    else:
        raise ValueError("bad request")
    login.check()
    return ident, login
