"""The active target: the running lab in DRKIT_HOME (the aws target plugs in here later)."""

from __future__ import annotations

from drkit.errors import ConfigError
from drkit.lab.lab import Lab
from drkit.targets.base import Target


def active_target() -> Target:
    """The lab in the state folder, if it is running; otherwise a clear error."""
    from drkit.targets.lab import LabTarget

    lab = Lab()
    if not lab.meta() or lab.toxiproxy.pid() is None:
        raise ConfigError(
            f"no active target: the lab in {lab.state} is not running; start it with "
            "`drkit lab up` (or set DRKIT_HOME to the lab you mean)"
        )
    return LabTarget(lab)
