"""Shared set-up for remote channel tests: a pymta root with controls and a queued message."""

from __future__ import annotations

import os

from pymta.control import ControlReader
from pymta.interfaces import DeliveryJob


def make_root(base: str, controls: dict[str, str] | None = None) -> str:
    root = os.path.abspath(base)
    os.makedirs(os.path.join(root, "control"), exist_ok=True)
    os.makedirs(os.path.join(root, "queue", "lock"), exist_ok=True)
    settings = {"me": "pymta.example", "timeoutconnect": "5", "timeoutremote": "10"}
    settings.update(controls or {})
    for name, text in settings.items():
        with open(os.path.join(root, "control", name), "w") as f:
            f.write(text if text.endswith("\n") or not text else text + "\n")
    return root


def write_message(root: str, body: bytes, message_id: int = 1) -> str:
    path = os.path.join(root, f"message-{message_id}")
    with open(path, "wb") as f:
        f.write(body)
    return path


def job(root: str, recipients: list[str], body: bytes = b"Subject: hi\n\nhello\n", sender: str = "alice@pymta.example", message_id: int = 1) -> DeliveryJob:
    return DeliveryJob(message_id, write_message(root, body, message_id), sender, tuple(recipients))


def reader(root: str) -> ControlReader:
    return ControlReader(root)
