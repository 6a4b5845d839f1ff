#!/bin/sh
# Many sessions (issue 19): smtp-source over 200 and 1,000 simultaneous
# sessions into twistd pymta and into Postfix, both delivering to a Maildir,
# and the memory per open idle session (benchmarks/sessions.py; --sessions
# 200,1000 --messages N --rounds 3 --idle 200 --only pymta,postfix --backlog N
# --settle-us US).  Run as root; installs Debian's postfix (smtp-source and the
# comparison instance) when it is missing.
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/smtp-source ] || [ ! -x /usr/sbin/postfix ]; then
    sh benchmarks/remote_install_postfix.sh
fi
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python benchmarks/sessions.py "$@"
