"""C{python -m pymta.qmailcompat NAME [ARG...]}: what the scripts of the compatibility directory run."""

from __future__ import annotations

import sys

from pymta.qmailcompat.programs import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
