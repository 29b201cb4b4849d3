"""The aws target's recovery actions, on the hybrid set-up's data plane.

`HybridAwsTarget` is the lab target with its failover going through the AWS APIs of the
config: the promotion by `AwsControlPlane.promote` (self-managed: `pg_promote()` over the
config's connection, its password resolved from the config's reference; RDS and Aurora by their
APIs) and the public name moved by a Route 53 UPSERT waited to INSYNC. Fencing, health and
consistency stay the data plane's (the lab's services). drkit's watcher runs with it when a
drill on the aws target switches the watcher on (`--dr-config` to the watcher service).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from drkit.aws.config import AwsConfig
from drkit.aws.control import AwsControlPlane
from drkit.clients.resolver import resolver_from_spec
from drkit.errors import ConfigError
from drkit.faults.ledger import RecoveryFailed
from drkit.lab.lab import Lab
from drkit.lab.topology import check_region
from drkit.targets.base import Health
from drkit.targets.lab import LabTarget, index_health_at, service_health_at


class HybridAwsTarget(LabTarget):
    name = "aws"

    def __init__(self, lab: Lab, config: AwsConfig, **kw: Any) -> None:
        super().__init__(lab, **kw)
        self.config = config
        self.aws = AwsControlPlane(config)
        self.public_name = config.route53.record.rstrip(".")

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

    def final_read(self, region: str) -> dict[str, str]:
        """id -> content hash of every document in `region`'s database, over the config's
        connection (as the harness reaches it from where it runs)."""
        from drkit.clients.postgres import PgEndpoint
        from drkit.measure.clients import content_hash

        with PgEndpoint.from_config(region, self.db_config(region)).connect(30) as conn:
            rows = conn.execute("SELECT id, body FROM documents").fetchall()
        return {str(i): content_hash(str(body)) for i, body in rows}

    def region_of_db(self, config: Mapping[str, Any]) -> str:
        for region in self.config.regions:
            if self.aws.database(region).host == config.get("host"):
                return region
        raise ConfigError(
            f"database host {config.get('host')!r} is none of the config's "
            f"(regions.<region>.database.host in {self.config.path})"
        )

    def service_health(self, region: str) -> Health:
        """The region's service at the config's `service_url`."""
        return service_health_at(self.config.region(region).service_url)

    def index_health(self, region: str) -> Health:
        """The config's Pinecone index of `region` through the Pinecone SDK, its API key from
        the config's reference; without an index in the config, the data plane's."""
        index = self.config.region(region).index
        if index is None:
            return super().index_health(region)
        return index_health_at(index.host, self.aws.secret(index.api_key, region))

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

    def promote(self, region: str) -> AwsPromote:  # type: ignore[override]
        return AwsPromote(self.aws, check_region(region))

    def switch_dns(self, region: str) -> AwsSwitchRecord:  # type: ignore[override]
        return AwsSwitchRecord(self, check_region(region))


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

    def __init__(self, target: HybridAwsTarget, region: str) -> None:
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
        return self.target.control.resolver().resolve(self.target.public_name) == self.address

    def verify_undone(self) -> bool:
        record = self.target.aws.read_record()
        return record is not None and self.previous in record.values
