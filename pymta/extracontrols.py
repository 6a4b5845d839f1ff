# -*- test-case-name: tests.test_extracontrols -*-
"""
The parsers of pymta's extra control files (those beyond qmail's set,
which L{pymta.control.load_controls} does not know), by file name.

Each parser takes a L{Controls} snapshot and returns the parsed value, or
raises L{pymta.control.ControlError} naming the file and the line.  The
daemons that read a file run its parser at start and at every reload
(L{pymta.control.ControlReader.add_check}): smtpd through
L{pymta.smtpd.service.check_controls}, pymta-send through its remote
channel (tlsdestinations, smarthostauth) and L{pymta.queue.service.build_send_service}
(queuesync).  C{pymta showctl} runs them all, and so does C{pymta check}
(L{pymta.configcheck.controlfiles}), which every daemon runs at start and
before each reload: these parsers are the only judges of these files.

C{servercert.pem} is not here: L{pymta.tls} reads it.
"""

from __future__ import annotations

from typing import Callable, Mapping

from pymta.control import Controls
from pymta.dkim.keys import key_entries
from pymta.dsn.bounceformat import bounce_format
from pymta.milter.settings import milter_specs
from pymta.queue.syncing import queuesync_mode
from pymta.remote.qmtproutes import qmtp_routes
from pymta.remote.lmtproutes import lmtp_routes
from pymta.remote.mtastssettings import mtasts_settings
from pymta.remote.smarthostauth import smarthost_credentials
from pymta.remote.tlspolicy import tls_destinations
from pymta.resolvers import configured_nameservers
from pymta.senderauth.settings import sender_auth_settings
from pymta.smtpd.context import per_ip_limit
from pymta.smtpd.dnsbl import rbl_zones
from pymta.smtpd.rcptcheck import rcptcheck_enabled
from pymta.trustedproxies import trusted_proxies

__all__ = ["PARSERS", "check_extra_controls"]

#: file name -> its parser, for every extra control file with a syntax
PARSERS: Mapping[str, Callable[[Controls], object]] = {
    "concurrencyperip": per_ip_limit,
    "rbls": rbl_zones,
    "rcptcheck": rcptcheck_enabled,
    "tlsdestinations": tls_destinations,
    "smarthostauth": smarthost_credentials,
    "queuesync": queuesync_mode,
    "senderauth": sender_auth_settings,
    "resolvers": configured_nameservers,
    "qmtproutes": qmtp_routes,
    "dkimkeys": key_entries,
    "mtasts": mtasts_settings,
    "bounceformat": bounce_format,
    "trustedproxies": trusted_proxies,
    "lmtproutes": lmtp_routes,
    "milters": milter_specs,
}


def check_extra_controls(controls: Controls) -> None:
    """Run every parser of L{PARSERS} on C{controls}; the first L{ControlError} propagates."""
    for parse in PARSERS.values():
        parse(controls)
