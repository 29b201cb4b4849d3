"""What a drill on the aws target stands on when no lab is beside it (`data_plane = "aws"`).

The lab gives a drill its state folder, timing profile, watcher, steady-state checks and
database clocks; against an AWS account the config gives them: the state folder is drkit's
own (`DRKIT_HOME`, else `.drkit/`: the open-faults pointer, the STOP file, the watcher's
ledgers), the profile is the config's `timing_profile`, drkit's watcher runs from the harness
host with the config, and the steady state is read through the config's connections, service
URLs, indexes and Route 53. Nothing here resets the system: after a failover, failing back is
the operator's (or the failback drill's) decision, and the next drill refuses to start until
the primary region serves again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from drkit import paths
from drkit.aws.config import AwsConfig
from drkit.config import TimingProfile
from drkit.errors import ConfigError, DrillError, OpenFaultsRemain
from drkit.evidence import clock
from drkit.lab.lab import Lab
from drkit.lab.watcher_component import WatcherComponent
from drkit.targets.aws import AwsTarget, profile_of

T = TypeVar("T")


class AwsEnvironment:
    def __init__(self, config: AwsConfig, state: Path | None = None) -> None:
        self.config = config
        self.state = (state or paths.state_dir()).resolve()
        if Lab(self.state).meta():
            raise ConfigError(
                f"the state folder {self.state} holds a lab, and {config.path} drills an "
                'account with no lab (data_plane = "aws"): give it a state folder of its own, '
                "e.g. DRKIT_HOME=.drkit-aws, so its ledger, STOP file and watcher are not the "
                "lab's"
            )
        for sub in ("run", "logs"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self.profile: TimingProfile = profile_of(config)
        self.watcher = WatcherComponent(self.state)

    def __repr__(self) -> str:
        return f"AwsEnvironment({self.config.path.name}, state={self.state})"

    def target(self, metric_scope: str | None = None) -> AwsTarget:
        return AwsTarget(self.config, metric_scope=metric_scope)

    def steady_state_problems(self) -> list[str]:
        """What keeps the system from its steady state now, read through the config: the
        primary region's database a primary and the DR region's a standby, the public record
        naming the primary's service, every service and index healthy. Empty: ready."""
        target = self.target()
        primary, dr = self.config.primary_region, self.config.dr_region
        problems: list[str] = []

        def read(what: str, fn: Callable[[], T]) -> T | None:
            """A read that fails is a problem named in the list; a ConfigError (a missing
            credential or reference) is the user's to fix, and stops the drill as itself."""
            try:
                return fn()
            except ConfigError:
                raise
            except DrillError as exc:
                problems.append(f"cannot read {what}: {exc}")
                return None

        for region, wanted in ((primary, "primary"), (dr, "standby")):
            role = read(f"{region}'s database role", partial(target.aws.database_role, region))
            if role != wanted and not any(f"{region}'s database role" in p for p in problems):
                seen = "cannot be read" if role is None else f"is a {role}"
                problems.append(f"{region}'s database {seen}; the steady state has a {wanted}")
        writer = read("the public record in Route 53", target.writer_region)
        if writer != primary and not any("public record" in p for p in problems):
            problems.append(
                f"{self.config.route53.record} names {writer or 'no region of the config'}'s "
                f"service, not {primary}'s"
            )
        for region in (primary, dr):
            for what, health in (
                ("service", target.service_health(region)),
                ("index", target.index_health(region)),
            ):
                if not health.ok:
                    problems.append(f"{region}'s {what} is not healthy: {health.detail}")
        return problems

    def clock_offsets(self) -> list[Any]:
        """The offset of each of the config's database servers' clocks from the harness's."""
        target = self.target()

        def connect(region: str) -> Any:
            from drkit.clients.postgres import PgEndpoint

            return PgEndpoint.from_config(region, target.db_config(region)).connect(10)

        return [
            clock.postgres_offset(f"PostgreSQL {region}", partial(connect, region))
            for region in target.regions()
        ]

    def ensure_no_watcher_left(self) -> None:
        """A watcher that a drill which did not end (SIGKILL, a crash) left running would
        still fail over on its own: refuse to start until `drkit rollback` has stopped it."""
        if (pid := self.watcher.pid()) is not None:
            raise OpenFaultsRemain(
                f"drkit's watcher (pid {pid}), left running by a drill that did not end, is "
                f"still watching from {self.state}; run `drkit rollback` (it stops it), then "
                "drill again"
            )

    def end_drill(self) -> None:
        """drkit's watcher runs for one drill: stopped (SIGTERM, then SIGKILL; it returns
        once the process is gone, or raises a LabError naming it)."""
        self.watcher.stop()
