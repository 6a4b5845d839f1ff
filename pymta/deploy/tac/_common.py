"""
Shared by the .tac files in this directory (not imported by pymta itself).

Every .tac reads its settings from the environment, so one file serves every
site: PYMTA_ROOT (default /var/pymta) and the listener variables named in
each file.  When started as root, the services drop to the owner of
ROOT/queue after binding ports and starting the spawners
(L{pymta.privileges.RootDroppingService}; unlike twistd's C{--uid} this
works for a mail uid without a passwd entry).
"""

import os

from twisted.application import service


def root() -> str:
    return os.environ.get("PYMTA_ROOT", "/var/pymta")


def application(name: str) -> service.Application:
    return service.Application(name)


def attach(app: service.Application, tap_module, argv: list[str]) -> None:
    from pymta.privileges import RootDroppingService

    options = tap_module.Options()
    options.parseOptions(argv)
    made = tap_module.makeService(options)
    if isinstance(made, RootDroppingService):
        made.setServiceParent(app)
        return
    top = RootDroppingService(options["root"])
    made.setServiceParent(top)
    top.setServiceParent(app)
