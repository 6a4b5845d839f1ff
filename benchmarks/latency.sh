#!/bin/sh
# One session's latency (issue 19): the time from the end-of-data "." to the
# 250, p50 and p99, for twistd pymta, pymta-smtpd + pymta-send and Postfix in
# the same run (benchmarks/latency.py; --count 500 --size 5120 --rounds 1
# --only pymta,pymta-split,postfix --queuesync fsync).  Run as root; installs
# Debian's postfix (the comparison instance) when it is missing.
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/postfix ]; then
    sh benchmarks/remote_install_postfix.sh
fi
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python benchmarks/latency.py "$@"
