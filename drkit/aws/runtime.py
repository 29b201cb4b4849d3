"""The aws target inside a drill: faults through the AWS APIs, behind the interlocks.

A drill run with `--dr-target aws` gets an AwsRuntime; the steps that change the target ask it
for their faults instead of building lab faults. Each destructive fault first passes the
blast-radius and market-hours interlocks, and their decision is kept in the drill's history
(so the evidence shows the override reason, when one was given).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drkit.aws.config import AwsConfig
from drkit.aws.control import AwsControlPlane
from drkit.aws.faults import AwsSecurityGroupBlock
from drkit.aws.interlocks import check_destructive, check_market_hours, declared_resources
from drkit.errors import ConfigError
from drkit.faults.base import Fault
from drkit.measure.history import History

INTERLOCKS = "interlocks"


@dataclass
class AwsRuntime:
    config: AwsConfig
    history: History
    allow_destructive: bool = False
    override_reason: str | None = None
    control: AwsControlPlane = field(init=False)

    def __post_init__(self) -> None:
        self.control = AwsControlPlane(self.config)

    def passes_interlocks(self, resource: str, kind: str, region: str) -> None:
        """Blast radius, then market hours; the decision is kept in the history."""
        check_destructive(
            resource,
            kind=kind,
            declared=declared_resources(self.config, kind),
            allowed=self.allow_destructive,
            region=region,
        )
        decision = check_market_hours(
            environment=self.config.environment,
            windows=self.config.blackout_windows,
            override_reason=self.override_reason,
        )
        self.history.observe(
            INTERLOCKS, region, resource=resource, kind=kind, market_hours=decision.to_json()
        )

    def region_outage(self, region: str) -> list[Fault]:
        """Every rule of the region's declared security groups revoked, ingress and egress
        (each group snapshotted whole first, and restored by difference on heal)."""
        groups = self.config.region(region).network.security_groups
        if not groups:
            raise ConfigError(
                f"{self.config.path}: regions.{region}.network.security_groups: none declared; "
                "a region outage on the aws target revokes the rules of the region's security "
                "groups, so declare them (with the ports a drill may cut)"
            )
        faults: list[Fault] = []
        for group in groups:
            self.passes_interlocks(group, "security group", region)
            faults.append(AwsSecurityGroupBlock.for_target(self.control, group, region=region))
        return faults

    def describe(self) -> dict[str, Any]:
        return {
            "config": str(self.config.path),
            "environment": self.config.environment,
            "allow_destructive": self.allow_destructive,
            "override_reason": self.override_reason,
        }
