"""
Shared by the .tac files in this directory (not imported by pymta itself).

Every .tac reads its settings from the environment, so one file serves every
site: PYMTA_ROOT (default /var/pymta) and the listener variables named in
each file.  When started as root, the Application drops to the owner of
ROOT/queue after binding ports and starting the local spawner.
"""

import os

from twisted.application import service


def root() -> str:
    return os.environ.get("PYMTA_ROOT", "/var/pymta")


def application(name: str) -> service.Application:
    if os.getuid() == 0:
        st = os.stat(os.path.join(root(), "queue"))
        return service.Application(name, uid=st.st_uid, gid=st.st_gid)
    return service.Application(name)


def attach(app: service.Application, tap_module, argv: list[str]) -> None:
    options = tap_module.Options()
    options.parseOptions(argv)
    tap_module.makeService(options).setServiceParent(app)
