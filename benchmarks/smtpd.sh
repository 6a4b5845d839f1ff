#!/bin/sh
# SMTP acceptance rate of pymta-smtpd (into the real queue) and of Postfix on
# loopback, measured with Postfix's smtp-source in the same run; prints both
# rates and the ratio.  Installs Debian's postfix (for smtp-source and the
# comparison instance) when run as root and it is missing.
# Arguments go to benchmarks/smtpd_bench.py (--count 2000 --sessions 20 --size 5120 --rounds 1).
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/smtp-source ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null
    else
        echo "smtp-source is missing: apt-get install postfix" >&2
        exit 1
    fi
fi
exec .venv/bin/python benchmarks/smtpd_bench.py "$@"
