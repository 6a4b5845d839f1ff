#!/bin/sh
# End-to-end load: Postfix's smtp-source into `twistd pymta` delivering to a
# local Maildir, into pymta as separate processes (pymta-smtpd + pymta-send),
# and into a throw-away Postfix instance delivering to a local Maildir, in
# the same run: accepted/s, delivered/s, peak RSS and the ratios.
# Installs Debian's postfix (smtp-source and the comparison instance) when
# run as root and it is missing.  Arguments go to benchmarks/end_to_end_bench.py
# (--count 2000 --sessions 20 --size 5120 --rounds 1 --only pymta,pymta-split,postfix,pymta-dkim --settle-us US;
# pymta-dkim: twistd pymta signing every message, and the ratio signing on/off when pymta runs too;
# pymta-lmtp: twistd pymta delivering over LMTP to a private Dovecot, and the ratio LMTP/Maildir;
# pymta-haproxy1, pymta-haproxy2: Debian's haproxy, installed when missing, in front of one or two
# twistd pymta front-ends; pymta-qmqp: a null client's pymta-smtpd handing each message to pymta over QMQP;
# pymta-milter, postfix-milter: both with one accept-all milter, and the ratios to no milter and pymta/Postfix).
set -e
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/smtp-source ] || [ ! -x /usr/sbin/postfix ]; then
    sh benchmarks/remote_install_postfix.sh
fi
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python benchmarks/end_to_end_bench.py "$@"
