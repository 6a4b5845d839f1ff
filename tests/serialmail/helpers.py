"""Held Maildirs for the serialmail tests."""

from __future__ import annotations

import os

from pymta.cli.maildirmake import maildirmake


def held_maildir(path: str) -> str:
    maildirmake(path)
    return path


def hold(maildir: str, name: str, sender: str, delivered_to: str, body: bytes = b"Subject: x\n\nhello\n",
         mtime: float | None = None, sub: str = "new") -> str:
    """A message as local delivery writes it: Return-Path, Delivered-To, then the message."""
    path = os.path.join(maildir, sub, name)
    with open(path, "wb") as f:
        f.write(f"Return-Path: <{sender}>\nDelivered-To: {delivered_to}\n".encode() + body)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path
