"""The aws target: the system reached through its config alone, or the hybrid set-up.

`AwsTarget` is what a quarterly drill against an AWS account uses: every read and every
recovery action goes through the config. The databases over its connections (password from
its reference), the services at its `service_url`s, the indexes through the Pinecone SDK at
its hosts, the public name through Route 53 and the config's resolvers, CloudWatch in its
namespace. The promotion is `AwsControlPlane.promote` (RDS, Aurora global database, or
`pg_promote()` for self-managed PostgreSQL) and the switch a Route 53 UPSERT waited to INSYNC.

`HybridAwsTarget` is the same with the running lab as its data plane (`data_plane = "lab"`,
written by `drkit lab aws-config`): the consistency reads are the lab's, and the lab evaluates
the lag alarm (moto's CloudWatch does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from drkit.aws.config import AwsConfig
from drkit.aws.control import AwsControlPlane, read_security_group
from drkit.clients.resolver import resolver_from_spec
from drkit.config import LAB_PROFILE, PRODUCTION_PROFILE, TimingProfile
from drkit.errors import ConfigError
from drkit.failover.monitor import Consistency, ReplicationStatus
from drkit.faults.ledger import RecoveryFailed
from drkit.lab.lab import Lab
from drkit.targets.base import Health
from drkit.targets.lab import (
    LAG_ALARM,
    LabTarget,
    index_health_at,
    service_health_at,
    stores_consistency,
    verify_serving,
)


def profile_of(config: AwsConfig) -> TimingProfile:
    """The config's `timing_profile` (its operational knobs; the objectives never change)."""
    return LAB_PROFILE if config.timing_profile == LAB_PROFILE.name else PRODUCTION_PROFILE


class AwsTarget:
    """The system behind the Target interface, reached through the config alone."""

    name = "aws"

    def __init__(self, config: AwsConfig, *, metric_scope: str | None = None) -> None:
        self.config = config
        self.aws = AwsControlPlane(config)
        self.metric_scope = metric_scope
        self.profile: TimingProfile = profile_of(config)
        self.public_name = config.route53.record.rstrip(".")
        self._alarmed: set[str] = set()

    # -- the drill's clients ---------------------------------------------------------------
    def client_resolver(self, timeout_s: float = 1.0) -> Any:
        """The config's resolvers (`route53.resolvers`), else the harness host's own: the
        drill's clients find the service as the desk's clients do."""
        resolvers = self.config.route53.resolvers
        return resolver_from_spec(",".join(resolvers) if resolvers else "system", timeout_s)

    def service_endpoint(self) -> tuple[str, int]:
        """The scheme and port of the primary region's service URL (the public name is served
        on the same)."""
        url = urlparse(self.config.region(self.config.primary_region).service_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        return url.scheme, port

    # -- reads -------------------------------------------------------------------------------
    def regions(self) -> tuple[str, ...]:
        return (self.config.primary_region, self.config.dr_region)

    def db_config(self, region: str) -> dict[str, Any]:
        """The config's connection to `region`'s database, its password resolved from the
        config's reference (the environment or Secrets Manager), never written anywhere."""
        db = self.aws.database(region)
        return {
            "host": db.host,
            "port": db.port,
            "database": db.name,
            "user": db.user,
            "password": self.aws.database_password(region),
        }

    def _rows(self, region: str, sql: str) -> list[tuple[Any, ...]]:
        from drkit.clients.postgres import PgEndpoint

        with PgEndpoint.from_config(region, self.db_config(region)).connect(30) as conn:
            return list(conn.execute(sql).fetchall())

    def final_read(self, region: str) -> dict[str, str]:
        """id -> content hash of every document in `region`'s database, over the config's
        connection (as the harness reaches it from where it runs)."""
        from drkit.measure.clients import content_hash

        rows = self._rows(region, "SELECT id, body FROM documents")
        return {str(i): content_hash(str(body)) for i, body in rows}

    def region_of_db(self, config: Mapping[str, Any]) -> str:
        for region in self.config.regions:
            if self.aws.database(region).host == config.get("host"):
                return region
        raise ConfigError(
            f"database host {config.get('host')!r} is none of the config's "
            f"(regions.<region>.database.host in {self.config.path})"
        )

    def api_url(self, region: str) -> str:
        """The region's own service URL (its health is at /health)."""
        return self.config.region(region).service_url.rstrip("/")

    def service_health(self, region: str) -> Health:
        """The region's service at the config's `service_url`."""
        return service_health_at(self.config.region(region).service_url)

    def index_health(self, region: str) -> Health:
        """The config's Pinecone index of `region` through the Pinecone SDK, its API key from
        the config's reference."""
        index = self.config.region(region).index
        if index is None:
            return Health(True, f"no index declared for {region} in {self.config.path}")
        return index_health_at(index.host, self.aws.secret(index.api_key, region))

    def _vector_hashes(self, region: str) -> dict[str, str]:
        import asyncio

        from pinecone import Pinecone

        from drkit.lab.sut import read_index_hashes

        index = self.config.region(region).index
        assert index is not None
        key = self.aws.secret(index.api_key, region)

        async def read() -> dict[str, str]:
            client = Pinecone(api_key=key, timeout=30).IndexAsyncio(host=index.host)
            try:
                return await read_index_hashes(client)
            finally:
                await client.close()

        return asyncio.run(read())

    def consistency(self, source: str, replica: str) -> Consistency:
        """Rows over the config's connections, and vectors through the Pinecone SDK when both
        regions declare an index, compared by id and content hash."""
        indexed = all(self.config.region(r).index is not None for r in (source, replica))
        return stores_consistency(
            source,
            replica,
            lambda region: {
                str(i): str(h)
                for i, h in self._rows(region, "SELECT id, content_hash FROM documents")
            },
            self._vector_hashes if indexed else None,
        )

    def publish_replication(self, status: ReplicationStatus, source: str, replica: str) -> None:
        """The monitor's figures to CloudWatch in the config's namespace, in the DR region
        (which survives the loss of the primary's), and the lag alarm on them."""
        dims = {"ReplicationPair": f"{source}->{replica}"}
        if self.metric_scope:
            dims["Drill"] = self.metric_scope[:255]
        self.aws.put_metric(
            "ReplicationLagSeconds", status.lag_seconds, unit="Seconds", region=replica,
            dimensions=dims, high_resolution=True,
        )  # fmt: skip
        self.aws.put_metric(
            "ReplicationLagBytes", float(status.lag_bytes), unit="Bytes", region=replica,
            dimensions=dims, high_resolution=True,
        )  # fmt: skip
        if replica not in self._alarmed:
            self.aws.put_lag_alarm(LAG_ALARM, replica, dims, self.profile.lag_alarm_threshold_s)
            self._alarmed.add(replica)

    def lag_alarm_state(self, replica: str) -> str:
        return self.aws.alarm_state(LAG_ALARM, replica).state

    def dns_ttl(self) -> int:
        record = self.aws.read_record()
        if record is not None and record.ttl is not None:
            return int(record.ttl)
        return int(self.config.route53.ttl)

    def writer_region(self) -> str | None:
        """The region whose service host the public name is answered with now (the record
        UPSERTed, or with failover routing the record Route 53 answers by its health checks),
        or None."""
        if self.config.route53.mode == "failover-routing":
            state = self.aws.failover_state()
            role = state.expected_role
            answered = [v for r in state.records if r.role == role for v in r.values]
        else:
            record = self.aws.read_record()
            answered = list(record.values) if record is not None else []
        values = {v.rstrip(".").lower() for v in answered}
        for region in self.regions():
            host = urlparse(self.config.region(region).service_url).hostname or ""
            if host.lower() in values:
                return region
        return None

    # -- recovery actions ------------------------------------------------------------------
    def fence(self, region: str) -> AwsQuarantine | NotFenced:
        """The old primary's database moved into the region's `quarantine_group` (nothing
        reaches it, so it acknowledges nothing), or, without one, a record that it was not."""
        if self.config.region(self._known(region)).network.quarantine_group is None:
            return NotFenced(self.config, region)
        return AwsQuarantine(self.aws, region)

    def promote(self, region: str) -> AwsPromote:
        return AwsPromote(self.aws, self._known(region))

    def switch_dns(self, region: str) -> AwsSwitchRecord:
        return AwsSwitchRecord(self, self._known(region))

    def verify_serving(self, region: str, budget_s: float) -> Health:
        return verify_serving(self, region, budget_s)

    def _known(self, region: str) -> str:
        if region not in self.config.regions:
            raise ConfigError(
                f"region {region!r} is not in {self.config.path}; "
                f"its regions are {', '.join(self.config.regions)}"
            )
        return region


class HybridAwsTarget(AwsTarget):
    """The aws target on the hybrid set-up: the config's control plane (moto), the lab as its
    data plane. Its consistency reads and its lag alarm (which the lab evaluates) are the
    lab's; everything else, fencing included, is the aws target's."""

    def __init__(self, lab: Lab, config: AwsConfig, *, metric_scope: str | None = None) -> None:
        super().__init__(config, metric_scope=metric_scope)
        self.lab = lab
        self.data_plane = LabTarget(lab, metric_scope=metric_scope)

    def consistency(self, source: str, replica: str) -> Consistency:
        return self.data_plane.consistency(source, replica)

    def publish_replication(self, status: ReplicationStatus, source: str, replica: str) -> None:
        self.data_plane.publish_replication(status, source, replica)

    def lag_alarm_state(self, replica: str) -> str:
        return self.data_plane.lag_alarm_state(replica)

    def index_health(self, region: str) -> Health:
        if self.config.region(region).index is None:
            return self.data_plane.index_health(region)
        return super().index_health(region)


class AwsQuarantine:
    """Fence the old primary region: its database (EC2 instance, or RDS instance) moved into
    the region's quarantine group in place of its own groups, waited until it reads back so.
    A group of its own, apart from the groups a fault revokes, so healing the fault that
    caused the failover never unfences the old primary. Undone (at failback) by putting its
    groups back."""

    kind = "aws.quarantine"
    phase = "fencing"

    def __init__(
        self, control: AwsControlPlane, region: str, previous: tuple[str, ...] | None = None
    ) -> None:
        """`previous`: the groups to put back (from the record of the fence being lifted);
        by default the database's groups now, which must not hold the quarantine already."""
        self.control, self.region = control, region
        quarantine = control.config.region(region).network.quarantine_group
        assert quarantine is not None
        self.quarantine = quarantine
        self.previous = previous if previous is not None else control.database_groups(region)
        if previous is None and quarantine in self.previous:
            raise ConfigError(
                f"{region}'s database is already in quarantine group {quarantine} (fenced by an "
                "earlier failover): fail back to lift that fence, or put its groups back by hand"
            )

    def params(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "quarantine_group": self.quarantine,
            "previous_groups": list(self.previous),
        }

    def describe(self) -> str:
        return (
            f"fence {self.region}: its database moved into quarantine group {self.quarantine} "
            f"(from {', '.join(self.previous) or 'no group'})"
        )

    def apply(self) -> None:
        rules = read_security_group(
            self.control.clients.ec2(self.region), self.quarantine, self.region
        )
        if rules.ingress:
            raise ConfigError(
                f"quarantine group {self.quarantine} ({self.region}) admits traffic "
                f"({len(rules.ingress)} ingress rule(s)): a fence must admit nothing; remove "
                "its rules, or name an empty group in quarantine_group"
            )
        self.control.set_database_groups(self.region, [self.quarantine], budget_s=120.0)

    def verify_applied(self) -> bool:
        return self.control.database_groups(self.region) == (self.quarantine,)

    def undo(self) -> None:
        self.control.set_database_groups(self.region, self.previous, budget_s=120.0)

    def verify_undone(self) -> bool:
        return self.control.database_groups(self.region) == self.previous


class NotFenced:
    """The aws target's fencing phase when the region declares no `quarantine_group`: it
    records that the old primary was not fenced (the failover's evidence says so); the
    organisation's own fencing, if any, is outside the drill."""

    kind = "aws.not_fenced"
    phase = "fencing"

    def __init__(self, config: AwsConfig, region: str) -> None:
        self.config, self.region = config, region

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return (
            f"{self.region} NOT fenced: no quarantine_group in [regions.{self.region}.network]; "
            "an old primary that comes back may acknowledge writes until it is stopped or "
            "isolated"
        )

    def apply(self) -> None:
        return None

    def verify_applied(self) -> bool:
        return True

    def undo(self) -> None:
        return None

    def verify_undone(self) -> bool:
        return True


class AwsPromote:
    """The config's promotion of `region`'s database, through the AWS APIs or pg_promote."""

    kind = "aws.promote"
    phase = "promotion"

    def __init__(self, control: AwsControlPlane, region: str) -> None:
        self.control, self.region = control, region
        self.result: Any = None

    def params(self) -> dict[str, Any]:
        return {"region": self.region, "promotion": self.control.config.promotion}

    def describe(self) -> str:
        return f"promote {self.region}'s database ({self.control.config.promotion}, AWS target)"

    def apply(self) -> None:
        self.result = self.control.promote(self.region, budget_s=30.0, interval_s=1.0)

    def verify_applied(self) -> bool:
        return self.result is not None

    def undo(self) -> None:
        raise RecoveryFailed(
            f"a promotion of {self.region} is undone by failback, not in place (on the hybrid "
            "set-up `drkit lab reset` also ends it)"
        )

    def verify_undone(self) -> bool:
        return False


class AwsSwitchRecord:
    """UPSERT the public record to `region`'s service address in Route 53, wait INSYNC, read it
    back from Route 53 and from the data plane's resolver."""

    kind = "aws.route53_upsert"
    phase = "dns_switch"

    def __init__(self, target: AwsTarget, region: str) -> None:
        self.target, self.region = target, region
        host = urlparse(target.config.region(region).service_url).hostname
        if not host:
            raise RecoveryFailed(f"regions.{region}.service_url has no host to point the name at")
        self.address = host
        previous = target.aws.read_record()
        self.previous = previous.values[0] if previous and previous.values else None

    def params(self) -> dict[str, Any]:
        return {"region": self.region, "address": self.address, "previous": self.previous}

    def describe(self) -> str:
        return f"Route 53 UPSERT {self.target.config.route53.record} -> {self.address}"

    def apply(self) -> None:
        self.target.aws.upsert_record(self.address, budget_s=60.0)

    def undo(self) -> None:
        if self.previous is not None:
            self.target.aws.upsert_record(self.previous, budget_s=60.0)

    def verify_applied(self) -> bool:
        record = self.target.aws.read_record()
        if record is None or self.address not in record.values:
            return False
        resolver = self.target.client_resolver()
        return resolver.resolve(self.target.public_name) == self.address

    def verify_undone(self) -> bool:
        record = self.target.aws.read_record()
        return record is not None and self.previous in record.values
