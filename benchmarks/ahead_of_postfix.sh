#!/bin/sh
# Every load of issue 19 against Postfix in one invocation (benchmarks/ahead_of_postfix.py):
# 20 sessions, 1 session, 200/1,000 sessions (sessions.py), 10/50 MB, one message to 1,000
# local recipients, to 1,000 over 100 remote domains and to smtp-sink, a deferring queue, a
# 100,000-message deferred queue; one table of the ratios at the end.
# Options: --quick (a smoke run), --only LOAD,..., --rounds N, --settle-us US.
# Run as root; installs Debian's postfix (smtp-source, smtp-sink, the comparison instance) when missing.
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/smtp-source ] || [ ! -x /usr/sbin/smtp-sink ] || [ ! -x /usr/sbin/postfix ]; then
    sh benchmarks/remote_install_postfix.sh
fi
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python benchmarks/ahead_of_postfix.py "$@"
