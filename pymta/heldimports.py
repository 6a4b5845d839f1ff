# -*- test-case-name: tests.test_heldimports -*-
"""
Imports that keep working after the privilege drop, wherever Python and
pymta are installed.

A daemon started as root drops to the mail account, and Python modules are
imported lazily long after that (Twisted's, the standard library's,
pymta's own).  When the code lives under a directory the account may not
enter - a clone in C{/root}, a pyenv or virtual environment in a 0700
home - every such import fails with C{PermissionError}.

L{hold_import_directories}, called as root before the drop, opens every
directory on C{sys.path} and keeps the descriptors.  A directory opened
before the drop stays reachable through C{/proc/self/fd/N}: the kernel
checks the permissions of the path from that descriptor on, not of the
directories above it.  L{HeldDirectoryFinder}, appended to
C{sys.meta_path}, is asked only when the normal import system found
nothing; it looks for the module again below the held descriptors (the
same C{FileFinder} with the same loaders, so source, bytecode, packages and
extension modules all work) and the module's C{__file__} then starts with
C{/proc/self/fd/N}.  Nothing changes for code the account can reach.

Only the directories themselves are opened, read-only; files below them
still need the account's read permission (a clone made with the usual
umask has it).  Linux only (C{/proc}); without C{/proc} nothing is held.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Sequence

__all__ = ["HeldDirectoryFinder", "hold_import_directories"]

_LOADERS = [
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
]


class HeldDirectoryFinder(MetaPathFinder):
    """Finds modules below directories held open by descriptor (see the module docstring)."""

    def __init__(self) -> None:
        #: directory path (as given and resolved) -> its /proc/self/fd/N path, longest path first
        self.held: dict[str, str] = {}
        self._finders: dict[str, importlib.machinery.FileFinder] = {}

    def hold(self, directory: str) -> None:
        given = os.path.abspath(directory)
        real = os.path.realpath(directory)
        if real in self.held or not os.path.isdir(real):
            if real in self.held:
                self.held.setdefault(given, self.held[real])
            return
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)  # close-on-exec, as Python opens it
        for key in {given, real}:
            self.held[key] = f"/proc/self/fd/{fd}"
        self.held = dict(sorted(self.held.items(), key=lambda item: -len(item[0])))

    def reachable_path(self, path: str) -> str | None:
        """C{path} below a held directory, spelt through its descriptor; None when not below one."""
        if path.startswith("/proc/self/fd/"):
            return None  # already spelt that way: the normal import system reaches it
        for candidate in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
            for directory, through in self.held.items():
                if candidate == directory:
                    return through
                if candidate.startswith(directory + os.sep):
                    return through + candidate[len(directory):]
        return None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        for entry in path if path is not None else sys.path:
            if not isinstance(entry, str) or not entry:
                continue
            through = self.reachable_path(entry)
            if through is None:
                continue
            finder = self._finders.get(through)
            if finder is None:
                finder = self._finders[through] = importlib.machinery.FileFinder(through, *_LOADERS)
            spec = finder.find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None

    def invalidate_caches(self) -> None:
        for finder in self._finders.values():
            finder.invalidate_caches()


def hold_import_directories(finder: HeldDirectoryFinder | None = None) -> HeldDirectoryFinder | None:
    """
    Hold every directory of C{sys.path} (and of the packages already
    imported from outside it) and install the finder, once per process.
    Returns the finder, or None without C{/proc/self/fd}.
    """
    if not os.path.isdir("/proc/self/fd"):
        return None
    if finder is None:
        finder = next((f for f in sys.meta_path if isinstance(f, HeldDirectoryFinder)), None) or HeldDirectoryFinder()
    for entry in sys.path:
        if isinstance(entry, str) and entry:
            finder.hold(entry)
    for module in list(sys.modules.values()):
        for location in getattr(module, "__path__", None) or ():
            if isinstance(location, str) and finder.reachable_path(location) is None:
                finder.hold(location)
    if finder not in sys.meta_path:
        sys.meta_path.append(finder)
    return finder
