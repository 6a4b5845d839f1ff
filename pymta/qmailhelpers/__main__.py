"""C{python -m pymta.qmailhelpers NAME [ARG...]}: run one .qmail helper (what the scripts in qmailbin/ do)."""

from __future__ import annotations

import importlib
import sys

from pymta.qmailhelpers import NAMES


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in NAMES:
        sys.stderr.write(f"usage: python -m pymta.qmailhelpers {{{'|'.join(NAMES)}}} [ARG...]\n")
        return 100
    module = importlib.import_module(f"pymta.qmailhelpers.{NAMES[argv[0]]}")
    code: int = module.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
