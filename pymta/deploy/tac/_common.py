"""
Shared by the .tac files in this directory (not imported by pymta itself).

Every .tac reads its settings from the environment, so one file serves every
site: PYMTA_ROOT (default /var/pymta) and the listener variables named in
each file.  A bad setting stops twistd with one line naming it (a bad
endpoint in PYMTA_SMTP, a root without a queue, a configuration error
found by the daemon's checks), never a traceback.  When started as root,
the services drop to the owner of ROOT/queue after binding ports and
starting the spawners
(L{pymta.privileges.RootDroppingService}; unlike twistd's C{--uid} this
works for a mail uid without a passwd entry); with no such account they
refuse to start.
"""

import os

from twisted.application import service


def root() -> str:
    return os.environ.get("PYMTA_ROOT", "/var/pymta")


def endpoint(variable: str, default: str) -> str:
    """The endpoint string in environment C{variable} (else C{default}), checked: one line naming it if bad."""
    from twisted.internet import reactor
    from twisted.python import usage

    from pymta.tls import check_server_endpoint

    value = os.environ.get(variable, default)
    if value:
        try:
            check_server_endpoint(reactor, value)
        except usage.UsageError as e:
            raise SystemExit(f"{variable}={value}: {e}") from None
    return value


def application(name: str) -> service.Application:
    return service.Application(name)


def attach(app: service.Application, tap_module, argv: list[str]) -> None:
    from twisted.python import usage

    from pymta.privileges import RootDroppingService, refuse_root_without_account

    options = tap_module.Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        raise SystemExit(f"{service.IService(app).name}: {e}") from None
    # started as root with no account to become: one line and exit, never the network side as root
    refuse_root_without_account(options["root"], service.IService(app).name)
    made = tap_module.makeService(options)
    if isinstance(made, RootDroppingService):
        made.daemon = True
        made.setServiceParent(app)
        return
    top = RootDroppingService(options["root"])
    top.daemon = True
    made.setServiceParent(top)
    top.setServiceParent(app)
