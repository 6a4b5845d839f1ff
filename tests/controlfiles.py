"""A temp pymta root with the control files a test names, read as one L{Controls} snapshot."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.control import Controls, load_controls


def controls_from(testcase: unittest.SynchronousTestCase, **files: str | None) -> Controls:
    """
    The L{Controls} of a new root under C{testcase.mktemp()} whose control
    files are C{files} (name -> exact content); a name given None has no
    file, so a test can say "absent" and "this text" with one call.
    """
    root = testcase.mktemp()
    os.makedirs(os.path.join(root, "control"))
    for name, text in files.items():
        if text is not None:
            with open(os.path.join(root, "control", name), "w") as f:
                f.write(text)
    return load_controls(root)
