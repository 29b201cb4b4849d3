"""Faults on the aws target, named by their effect; each reads its effect back from the API.

Params hold only ids, regions and endpoint URLs (never credentials), so `drkit rollback`
rebuilds a fault from its ledger record in a fresh process and heals it with the usual boto3
credential chain. The security-group block carries its whole snapshot, ingress and egress,
so its heal restores the group even after the run that injected it died.
Build them with `for_target(control, ...)`: that checks the resource is declared in the config
and fills in the endpoint; the constructors are what the registry calls on rollback.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

from drkit.aws.clients import AwsClients
from drkit.aws.control import (
    DIRECTIONS,
    FIS_TERMINAL,
    AclEntry,
    AwsControlPlane,
    Rule,
    SecurityGroupSnapshot,
    acl_entries,
    add_acl_entries,
    change_rules,
    isolation_entries,
    read_network_acl,
    read_security_group,
    remove_acl_entries,
    restore_rules,
)
from drkit.aws.waiters import (
    describe_db_instance,
    describe_instance,
    instance_state,
    wait_db_available,
    wait_instance_state,
    wait_until,
)
from drkit.clients.aws import aws_errors
from drkit.errors import ConfigError
from drkit.faults.base import register_fault

MARGIN_S = 30.0  # a bounded call's timeout beyond the fault's own wait budget
FIS_TOKEN_TAG = "drkit-fault-token"  # finds a fault's FIS experiments without their ids
FIS_ACTIVE = frozenset({"pending", "initiating", "running"})


class _AwsFault:
    """Region, endpoint and clients; ``clients`` is never a param (rollback makes its own)."""

    service: ClassVar[str]

    def __init__(self, region: str, endpoint_url: str | None, clients: AwsClients | None) -> None:
        self.region, self.endpoint_url = region, endpoint_url
        self.clients = clients or AwsClients(
            endpoint_urls={self.service: endpoint_url} if endpoint_url else None
        )

    def _base_params(self) -> dict[str, Any]:
        return {"region": self.region, "endpoint_url": self.endpoint_url}

    @property
    def client(self) -> Any:
        return self.clients.client(self.service, self.region)


@register_fault
class AwsSecurityGroupBlock(_AwsFault):
    """Revoke a security group's rules (all of them, or those covering ``ports``), in the
    given directions; the heal restores the whole group to its snapshot by difference."""

    kind = "aws.security_group_block"
    service = "ec2"
    timeout = 60.0

    def __init__(
        self,
        region: str,
        group_id: str,
        endpoint_url: str | None = None,
        ports: Sequence[int] | None = None,
        directions: Sequence[str] = DIRECTIONS,
        snapshot: dict[str, Any] | None = None,
        clients: AwsClients | None = None,
    ) -> None:
        super().__init__(region, endpoint_url, clients)
        self.group_id = group_id
        self.ports = _check_ports(ports) if ports else None
        self.directions = _check_directions(directions)
        self.snapshot = (
            SecurityGroupSnapshot.from_json(snapshot)
            if snapshot is not None
            else read_security_group(self.client, group_id, region)
        )
        if self.snapshot.group_id != group_id:
            raise ConfigError(f"the snapshot is of {self.snapshot.group_id}, not of {group_id}")
        if not any(self.targeted(d) for d in self.directions):
            raise ConfigError(
                f"security group {group_id} ({region}) has no {'/'.join(self.directions)} rule "
                f"{self._scope()}: blocking it would change nothing; pick other ports or groups"
            )

    @classmethod
    def for_target(
        cls,
        control: AwsControlPlane,
        group_id: str,
        *,
        region: str | None = None,
        ports: Sequence[int] | None = None,
        directions: Sequence[str] = DIRECTIONS,
    ) -> AwsSecurityGroupBlock:
        """A block of a declared group; ``ports`` default to the region's declared ports
        (none declared: every rule), and must be among them."""
        region = control.listed_region("security_groups", group_id, region)
        allowed = control.region_config(region).network.ports
        if ports and allowed and set(ports) - set(allowed):
            raise ConfigError(
                f"ports {sorted(set(ports) - set(allowed))} are not among the ports a block may "
                f"cut in {region} ({list(allowed)}); add them to [regions.{region}.network] ports"
            )
        return cls(
            region,
            group_id,
            control.clients.endpoint_url("ec2"),
            ports=ports or allowed or None,
            directions=directions,
            clients=control.clients,
        )

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "group_id": self.group_id,
            "ports": list(self.ports) if self.ports else None,
            "directions": list(self.directions),
            "snapshot": self.snapshot.to_json(),
        }

    def _scope(self) -> str:
        return f"covering ports {list(self.ports)}" if self.ports else "at all"

    def describe(self) -> str:
        counts = ", ".join(f"{len(self.targeted(d))} {d}" for d in self.directions)
        return (
            f"security group {self.group_id} ({self.region}): rules {self._scope()} revoked "
            f"({counts}; a rule covering a wider range is revoked whole)"
        )

    def targeted(self, direction: str) -> frozenset[Rule]:
        rules = self.snapshot.rules(direction)
        if self.ports is None:
            return rules
        return frozenset(r for r in rules if any(r.covers(p) for p in self.ports))

    def inject(self) -> None:
        current = read_security_group(self.client, self.group_id, self.region)
        for direction in self.directions:
            present = self.targeted(direction) & current.rules(direction)
            change_rules(self.client, self.group_id, direction, "revoke", present)

    def heal(self) -> None:
        restore_rules(self.client, self.snapshot)

    def verify_injected(self) -> bool:
        current = read_security_group(self.client, self.group_id, self.region)
        return not any(self.targeted(d) & current.rules(d) for d in self.directions)

    def verify_healed(self) -> bool:
        current = read_security_group(self.client, self.group_id, self.region)
        return not self.snapshot.differences(current)


@register_fault
class AwsNetworkAclIsolation(_AwsFault):
    """Deny all traffic to and from ``cidrs`` on a network ACL, both directions, with entries
    in drkit's reserved rule numbers (ahead of every allow). Every subnet of the ACL is cut."""

    kind = "aws.network_acl_isolation"
    service = "ec2"
    timeout = 60.0

    def __init__(
        self,
        region: str,
        network_acl_id: str,
        endpoint_url: str | None = None,
        cidrs: Sequence[str] = ("0.0.0.0/0",),
        clients: AwsClients | None = None,
    ) -> None:
        super().__init__(region, endpoint_url, clients)
        self.network_acl_id = network_acl_id
        self.cidrs = tuple(cidrs)
        self.entries = isolation_entries(self.cidrs)

    @classmethod
    def for_target(
        cls, control: AwsControlPlane, network_acl_id: str, *, region: str | None = None
    ) -> AwsNetworkAclIsolation:
        region = control.listed_region("network_acls", network_acl_id, region)
        return cls(
            region,
            network_acl_id,
            control.clients.endpoint_url("ec2"),
            cidrs=control.isolation_cidrs(network_acl_id, region),
            clients=control.clients,
        )

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "network_acl_id": self.network_acl_id,
            "cidrs": list(self.cidrs),
        }

    def describe(self) -> str:
        rules = sorted({e.rule_number for e in self.entries})
        return (
            f"network ACL {self.network_acl_id} ({self.region}): all traffic to and from "
            f"{', '.join(self.cidrs)} denied (rules {rules}, both directions)"
        )

    def inject(self) -> None:
        add_acl_entries(self.client, self.network_acl_id, self.entries)

    def heal(self) -> None:
        remove_acl_entries(self.client, self.network_acl_id, self.entries)

    def _present(self) -> set[AclEntry]:
        return acl_entries(read_network_acl(self.client, self.network_acl_id)) & set(self.entries)

    def verify_injected(self) -> bool:
        return self._present() == set(self.entries)

    def verify_healed(self) -> bool:
        return not self._present()


@register_fault
class AwsInstanceStop(_AwsFault):
    """Stop the EC2 instance of a self-managed PostgreSQL (``force``: no clean shutdown, the
    closer to a crash); the heal starts it and waits until it runs."""

    kind = "aws.instance_stop"
    service = "ec2"

    def __init__(
        self,
        region: str,
        instance_id: str,
        endpoint_url: str | None = None,
        force: bool = False,
        budget_s: float = 600.0,
        clients: AwsClients | None = None,
    ) -> None:
        super().__init__(region, endpoint_url, clients)
        self.instance_id, self.force, self.budget_s = instance_id, force, budget_s
        self.timeout = 2 * budget_s + MARGIN_S  # the heal may wait for stopped, then running

    @classmethod
    def for_target(
        cls, control: AwsControlPlane, region: str, *, force: bool = False, budget_s: float = 600.0
    ) -> AwsInstanceStop:
        instance_id = control.database(region).ec2_instance_id
        if not instance_id:
            raise ConfigError(
                f"[regions.{region}.database] ec2_instance_id is missing in "
                f"{control.config.path}; the instance-stop fault needs the instance to stop"
            )
        endpoint = control.clients.endpoint_url("ec2")
        fault = cls(region, instance_id, endpoint, force, budget_s, control.clients)
        if (state := fault._state()) != "running":
            # its heal would start an instance that somebody stopped on purpose
            raise ConfigError(
                f"EC2 instance {instance_id} ({region}) is {state}, not running: stopping it "
                "would change nothing, and its heal would start it; pick a running instance"
            )
        return fault

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "instance_id": self.instance_id,
            "force": self.force,
            "budget_s": self.budget_s,
        }

    def describe(self) -> str:
        how = "force-stopped" if self.force else "stopped"
        return f"EC2 instance {self.instance_id} ({self.region}) {how}"

    def _state(self) -> str:
        return instance_state(describe_instance(self.client, self.instance_id))

    def inject(self) -> None:
        with aws_errors(f"stop instance {self.instance_id}", self._where()):
            self.client.stop_instances(InstanceIds=[self.instance_id], Force=self.force)

    def heal(self) -> None:
        state = self._state()
        if state == "stopping":
            wait_instance_state(self.client, self.instance_id, "stopped", self.budget_s)
            state = "stopped"
        if state == "stopped":
            with aws_errors(f"start instance {self.instance_id}", self._where()):
                self.client.start_instances(InstanceIds=[self.instance_id])
        wait_instance_state(self.client, self.instance_id, "running", self.budget_s)

    def verify_injected(self) -> bool:
        return self._state() in ("stopping", "stopped")

    def verify_healed(self) -> bool:
        return self._state() == "running"

    def _where(self) -> str:
        return self.clients.where("ec2", self.region)


@register_fault
class AwsRdsReboot(_AwsFault):
    """Reboot an RDS instance without failover (ForceFailover False); the heal waits until
    it is available again. Injected means RDS reports it `rebooting`."""

    kind = "aws.rds_reboot"
    service = "rds"

    def __init__(
        self,
        region: str,
        identifier: str,
        endpoint_url: str | None = None,
        budget_s: float = 900.0,
        clients: AwsClients | None = None,
    ) -> None:
        super().__init__(region, endpoint_url, clients)
        self.identifier, self.budget_s = identifier, budget_s
        self.timeout = budget_s + MARGIN_S

    @classmethod
    def for_target(
        cls, control: AwsControlPlane, region: str, *, budget_s: float = 900.0
    ) -> AwsRdsReboot:
        identifier = control.database(region).identifier
        if not identifier or control.config.promotion != "rds":
            raise ConfigError(
                f"the RDS reboot fault needs promotion = 'rds' and [regions.{region}.database] "
                f"identifier (an RDS instance id) in {control.config.path}"
            )
        return cls(
            region, identifier, control.clients.endpoint_url("rds"), budget_s, control.clients
        )

    def params(self) -> dict[str, Any]:
        return {**self._base_params(), "identifier": self.identifier, "budget_s": self.budget_s}

    def describe(self) -> str:
        return f"RDS instance {self.identifier} ({self.region}) rebooted without failover"

    def _status(self) -> str:
        return str(describe_db_instance(self.client, self.identifier).get("DBInstanceStatus"))

    def inject(self) -> None:
        where = self.clients.where("rds", self.region)
        with aws_errors(f"reboot RDS instance {self.identifier}", where):
            self.client.reboot_db_instance(
                DBInstanceIdentifier=self.identifier, ForceFailover=False
            )

    def heal(self) -> None:
        wait_db_available(self.client, self.identifier, self.budget_s)

    def verify_injected(self) -> bool:
        return self._status() == "rebooting"

    def verify_healed(self) -> bool:
        return self._status() == "available"


def _check_ports(ports: Sequence[int]) -> tuple[int, ...]:
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port {port!r} is not a port number (0-65535)")
    return tuple(sorted(set(ports)))


def _check_directions(directions: Sequence[str]) -> tuple[str, ...]:
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ConfigError(f"directions {list(directions)!r}: use ingress, egress or both")
    return tuple(d for d in DIRECTIONS if d in directions)


@register_fault
class AwsFisExperiment(_AwsFault):
    """An AWS FIS experiment started from a template, for a fault drkit does not make itself
    (latency on the replication path through an SSM action, a network disruption, an Aurora
    crash). Injected: the experiment is initiating or running; healed: it is stopped (or
    finished) and every experiment carrying this fault's token is, so `drkit rollback` stops
    it even when the run died between the start and the ledger's record. FIS reports its own
    state only: the drill's verdicts read the effect from the system."""

    kind = "aws.fis_experiment"
    service = "fis"

    def __init__(
        self,
        region: str,
        template_id: str,
        fault: str,
        endpoint_url: str | None = None,
        token: str | None = None,
        budget_s: float = 120.0,
        clients: AwsClients | None = None,
    ) -> None:
        super().__init__(region, endpoint_url, clients)
        self.template_id, self.fault, self.budget_s = template_id, fault, budget_s
        self.token = token or uuid.uuid4().hex
        self.timeout = budget_s + MARGIN_S

    @classmethod
    def for_target(
        cls, control: AwsControlPlane, fault: str, region: str, *, budget_s: float = 120.0
    ) -> AwsFisExperiment:
        template = control.config.fis_templates.get(fault)
        if template is None:
            raise ConfigError(
                f"{control.config.path}: fis_templates.{fault}: not set; this fault runs as an "
                f'AWS FIS experiment on the aws target, so add {fault} = "EXT..." (its '
                "experiment template id) under [fis_templates]"
            )
        return cls(region, template, fault, control.clients.endpoint_url("fis"), None, budget_s,
                   control.clients)  # fmt: skip

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "template_id": self.template_id,
            "fault": self.fault,
            "token": self.token,
            "budget_s": self.budget_s,
        }

    def describe(self) -> str:
        return f"AWS FIS experiment from template {self.template_id} ({self.fault}, {self.region})"

    def _where(self) -> str:
        return self.clients.where("fis", self.region)

    def _experiments(self) -> list[dict[str, Any]]:
        """This fault's experiments (tagged with its token), newest last."""
        with aws_errors(f"list FIS experiments of template {self.template_id}", self._where()):
            pages = self.client.get_paginator("list_experiments").paginate(
                experimentTemplateId=self.template_id
            )
            found = [e for page in pages for e in page.get("experiments", [])]
        return [e for e in found if e.get("tags", {}).get(FIS_TOKEN_TAG) == self.token]

    def _status(self, experiment_id: str) -> str:
        with aws_errors(f"get FIS experiment {experiment_id}", self._where()):
            answer = self.client.get_experiment(id=experiment_id)
        return str(answer["experiment"].get("state", {}).get("status", ""))

    def inject(self) -> None:
        with aws_errors(f"start FIS experiment from {self.template_id}", self._where()):
            answer = self.client.start_experiment(
                experimentTemplateId=self.template_id,
                clientToken=self.token,
                tags={"drkit": "drill", FIS_TOKEN_TAG: self.token},
            )
        experiment_id = str(answer["experiment"]["id"])
        wait_until(
            lambda: self._status(experiment_id),
            lambda status: status == "running",
            what=f"FIS experiment {experiment_id} to run",
            budget_s=self.budget_s,
            interval_s=1.0,
            failure=lambda s: f"it ended as {s}" if s in FIS_TERMINAL else None,
        )

    def heal(self) -> None:
        for experiment in self._experiments():
            experiment_id = str(experiment["id"])
            if self._status(experiment_id) not in FIS_TERMINAL:
                with aws_errors(f"stop FIS experiment {experiment_id}", self._where()):
                    self.client.stop_experiment(id=experiment_id)
            wait_until(
                lambda eid=experiment_id: self._status(eid),  # type: ignore[misc]
                lambda status: status in FIS_TERMINAL,
                what=f"FIS experiment {experiment_id} to stop",
                budget_s=self.budget_s,
                interval_s=1.0,
            )

    def verify_injected(self) -> bool:
        return any(self._status(str(e["id"])) in FIS_ACTIVE for e in self._experiments())

    def verify_healed(self) -> bool:
        return all(self._status(str(e["id"])) in FIS_TERMINAL for e in self._experiments())
