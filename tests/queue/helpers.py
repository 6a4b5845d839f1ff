"""Fixtures shared by the tests of pymta.queue."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.control import Controls, load_controls


def controls_from(testcase: unittest.SynchronousTestCase, **files: str) -> Controls:
    """The L{Controls} of a new root whose control files are C{files} (name -> exact content)."""
    root = testcase.mktemp()
    os.makedirs(os.path.join(root, "control"))
    for name, text in files.items():
        with open(os.path.join(root, "control", name), "w") as f:
            f.write(text)
    return load_controls(root)
