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
from drkit.aws.faults import (
    AwsFisExperiment,
    AwsInstanceStop,
    AwsRdsReboot,
    AwsSecurityGroupBlock,
)
from drkit.aws.interlocks import (
    StopWatch,
    check_destructive,
    check_market_hours,
    declared_resources,
)
from drkit.errors import ConfigError
from drkit.faults.base import Fault
from drkit.measure.history import History

INTERLOCKS = "interlocks"
# Faults managed cross-region replication does not feel: RDS and Aurora replicate over AWS's
# own network, which security groups and network ACLs do not cut.
NETWORK_FAULTS = frozenset({"aws.security_group_block", "aws.network_acl_isolation"})


def rpo_not_exercised(promotion: str, disaster_kind: str | None) -> str | None:
    """Why the RPO was not put to the test by this disaster on this promotion, or None."""
    if promotion in ("rds", "aurora-global") and disaster_kind in NETWORK_FAULTS:
        return (
            f"managed cross-region replication ({promotion}) ignores security groups and network "
            f"ACLs: the disaster ({disaster_kind}) did not interrupt replication, so the RPO was "
            "not put to the test; use a primary-crash fault, or self-managed replication"
        )
    return None


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

    def primary_crash(self, region: str) -> Fault:
        """`fis_templates.primary_crash` when the config maps one; else self-managed: the
        database's EC2 instance stopped hard; RDS: a reboot without failover. Behind the
        interlocks like every destructive fault."""
        if (experiment := self.fis_fault("primary_crash", region)) is not None:
            return experiment
        db = self.config.region(region).database
        if self.config.promotion == "self-managed":
            if not db.ec2_instance_id:
                raise ConfigError(
                    f"{self.config.path}: regions.{region}.database.ec2_instance_id: not set; a "
                    "primary crash on self-managed PostgreSQL stops its EC2 instance, so name it"
                )
            self.passes_interlocks(db.ec2_instance_id, "EC2 instance", region)
            return AwsInstanceStop.for_target(self.control, region)
        if self.config.promotion == "rds" and db.identifier:
            self.passes_interlocks(db.identifier, "database", region)
            return AwsRdsReboot.for_target(self.control, region)
        raise ConfigError(
            f"{self.config.path}: promotion = {self.config.promotion!r}: the aws target has no "
            "primary-crash fault for it (Aurora: use an FIS template in fis_templates)"
        )

    def fis_fault(self, name: str, region: str, **expected: Any) -> Fault | None:
        """The config's FIS experiment for the fault `name` (`[fis_templates]`), behind the
        interlocks; None when the config maps no template to it. The template fixes what the
        experiment does: the step's own figures (`expected`) are kept in the history beside
        it, as what the drill expects the template to do."""
        template = self.config.fis_templates.get(name)
        if template is None:
            return None
        self.passes_interlocks(template, "FIS template", region)
        self.history.observe(
            "fis template", region, fault=name, template=template, step_expects=expected
        )
        return AwsFisExperiment.for_target(self.control, name, region)

    def stop_watch(self, on_trip: Any) -> StopWatch | None:
        """The config's stop conditions, watched while the drill runs (None: there are none)."""
        if not self.config.stop_conditions:
            return None
        import httpx

        def alarm_state(condition: Any) -> str:
            region = condition.region or self.config.primary_region
            return self.control.alarm_state(condition.alarm, region).state

        def probe(url: str) -> bool:
            return httpx.get(url, timeout=5.0).is_success

        return StopWatch(
            self.config.stop_conditions,
            alarm_state=alarm_state,
            probe=probe,
            interval_s=1.0,
            on_trip=on_trip,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "config": str(self.config.path),
            "environment": self.config.environment,
            "allow_destructive": self.allow_destructive,
            "override_reason": self.override_reason,
        }
