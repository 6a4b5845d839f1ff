#!/bin/sh
# Install Debian's postfix (and its smtp-sink) for the remote-delivery interop
# test and benchmarks/remote.sh.  "No configuration" keeps postfix from
# starting a system instance on port 25; the tests run private instances.
set -e
if command -v /usr/sbin/postfix >/dev/null 2>&1 && command -v /usr/sbin/smtp-sink >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "remote_install_postfix.sh: needs root" >&2
    exit 1
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends postfix >/dev/null
