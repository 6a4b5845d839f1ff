#!/bin/sh
# Messages per second from pymta's queue to Postfix's smtp-sink on loopback,
# with concurrencyremote 20 and 100.  Installs postfix (for smtp-sink) when
# run as root and it is missing.  Arguments go to benchmarks/remote.py
# (--count N, --concurrency 20,100, --seconds S).
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/smtp-sink ]; then
    sh benchmarks/remote_install_postfix.sh
fi
exec .venv/bin/python benchmarks/remote.py "$@"
