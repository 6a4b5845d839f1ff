"""Shared fixtures for the local delivery tests: a home with a Maildir and a queued message."""

from __future__ import annotations

import os

from pymta.local.getpw import LocalUser

MESSAGE = b"Subject: test\nTo: joe@example.org\n\nFirst line\nFrom the start\n>From quoted\nlast line\n"


def make_maildir(path: str) -> str:
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
    return path


def make_home(base: str, mode: int = 0o700) -> str:
    home = os.path.abspath(base)
    os.makedirs(home, exist_ok=True)
    os.chmod(home, mode)
    make_maildir(os.path.join(home, "Maildir"))
    return home


def write_file(path: str, data: bytes | str, mode: int = 0o644) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def open_message(path: str, data: bytes = MESSAGE) -> int:
    write_file(path, data, 0o600)
    return os.open(path, os.O_RDONLY)


def user(home: str, dash: str = "", ext: str = "", name: str = "joe") -> LocalUser:
    return LocalUser(name, os.getuid(), os.getgid(), home, dash, ext, "assign")


def maildir_files(maildir: str) -> list[bytes]:
    new = os.path.join(maildir, "new")
    out = []
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as f:
            out.append(f.read())
    return out


def chown_tree(path: str, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)
