"""The embedded lab as a Target: reads its parts, and runs recovery actions on them.

Recovery actions here are the lab's mechanisms for a failover: the fencing lease
(drkit.lab.fence), `pg_promote` over the DR database connection, and a Route 53 UPSERT of the
public name (moto, served by the lab DNS). Each reads its effect back.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Protocol

import httpx
import psycopg

from drkit.clients.postgres import PgEndpoint
from drkit.config import TimingProfile
from drkit.errors import ConfigError, DrillError, LabError
from drkit.failover.monitor import Consistency, ReplicationStatus
from drkit.faults.ledger import RecoveryFailed
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.fence import FENCE_FILE, fence_region, read_fences, unfence_region
from drkit.lab.lab import Lab
from drkit.lab.topology import PUBLIC, REGIONS, check_region, ingress_address
from drkit.targets.base import Health

HTTP_TIMEOUT_S = 1.0
METRIC_NAMESPACE = "drkit/Replication"
LAG_ALARM = "drkit-replication-lag"


def region_of_address(address: str) -> str | None:
    """Which region's block (127.0.1.x or 127.0.2.x) an address belongs to."""
    parts = address.split(".")
    if len(parts) == 4 and parts[0] == "127" and parts[1] == "0":
        return {"1": "us-east-1", "2": "us-west-2"}.get(parts[2])
    return None


def compare(source: Mapping[str, str], replica: Mapping[str, str]) -> tuple[int, int, int, int]:
    """(equal, missing, extra, stale) of two id -> content-hash maps."""
    union = source.keys() | replica.keys()
    missing = sum(1 for i in source if i not in replica)
    extra = sum(1 for i in replica if i not in source)
    stale = sum(1 for i in source if i in replica and source[i] != replica[i])
    return len(union) - missing - extra - stale, missing, extra, stale


def differing(source: Mapping[str, str], replica: Mapping[str, str]) -> dict[str, str]:
    """id -> how it differs (missing, extra, stale) between two id -> content-hash maps."""
    kinds = {i: "missing" for i in source if i not in replica}
    kinds |= {i: "stale" for i in source if i in replica and source[i] != replica[i]}
    kinds |= {i: "extra" for i in replica if i not in source}
    return kinds


def settled_consistency(
    read_source: Callable[[], Mapping[str, str]],
    read_replica: Callable[[], Mapping[str, str]],
    what: str,
) -> Consistency:
    """Consistency of two stores that take writes while they are read. One pass reads the
    source, then the replica: a write landing between the two reads differs in that pass
    only (extra in the replica, or missing while it replicates). A second pass is read when
    the first differs, and only an id that differs the same way in both counts: real drift
    (a deleted vector, a wrong hash) persists, a write in flight does not."""
    source, replica = read_source(), read_replica()
    persistent, passes = differing(source, replica), 1
    if persistent:
        source, replica, passes = read_source(), read_replica(), 2
        again = differing(source, replica)
        persistent = {i: kind for i, kind in persistent.items() if again.get(i) == kind}
    total = len(source.keys() | replica.keys() | persistent.keys())
    counts = {kind: sum(1 for k in persistent.values() if k == kind) for kind in KINDS}
    equal = total - sum(counts.values())
    ratio = equal / total if total else 1.0
    detail = {what: {"equal": equal, **counts, "union": total, "passes": passes}}
    return Consistency(ratio, total, counts["missing"], counts["extra"], counts["stale"], detail)


KINDS = ("missing", "extra", "stale")


def service_health_at(service_url: str) -> Health:
    """The RAG service's own health (`GET /health`): ok when it answers 200 with status ok."""
    url = service_url.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Health(False, f"GET {url} failed: {type(exc).__name__}")
    body = _json(response)
    ok = response.status_code == 200 and body.get("status") == "ok"
    return Health(
        ok,
        f"HTTP {response.status_code}, role {body.get('role')}, status {body.get('status')}",
        body,
    )


def index_health_at(host: str, api_key: str) -> Health:
    """A Pinecone index's health through the Pinecone SDK (`describe_index_stats`)."""
    try:
        from pinecone import Pinecone

        with Pinecone(api_key=api_key, timeout=HTTP_TIMEOUT_S).index(host=host) as index:
            stats = index.describe_index_stats()
    except Exception as exc:  # the SDK raises many kinds; any is "not healthy"
        return Health(False, f"describe_index_stats on {host} failed: {type(exc).__name__}")
    count = int(stats.total_vector_count or 0)
    return Health(True, f"{count} vectors", {"vectors": count})


class LabTarget:
    """The running lab behind the Target interface."""

    name = "lab"

    def __init__(self, lab: Lab | None = None, *, metric_scope: str | None = None) -> None:
        """`metric_scope` adds a `Drill` dimension to the published replication metrics and
        the lag alarm, so one drill's alarm never sees another's datapoints (CloudWatch keeps
        metric data; only alarms can be deleted)."""
        self.lab = lab or Lab()
        self.metric_scope = metric_scope
        self.control = LabControlPlane.of(self.lab)
        self.profile: TimingProfile = self.lab.settings.profile
        self.public_name = self.control.public_record().name
        self._alarmed: set[str] = set()

    # -- the drill's clients ---------------------------------------------------------------
    def client_resolver(self, timeout_s: float = 1.0) -> Any:
        """A fresh TTL-honouring resolver for one client of the public name (the lab's DNS)."""
        return self.control.resolver(timeout_s)

    def service_endpoint(self) -> tuple[str, int]:
        """The scheme and port the public name is served on."""
        return "http", self.lab.settings.ports.api

    # -- reads ---------------------------------------------------------------------------
    def regions(self) -> tuple[str, ...]:
        return REGIONS

    def region_of_db(self, config: Mapping[str, Any]) -> str:
        region = region_of_address(str(config.get("host", "")))
        if region is None:
            raise ConfigError(
                f"database host {config.get('host')!r} is not one of the lab's addresses "
                "(127.0.1.x for us-east-1, 127.0.2.x for us-west-2); use Lab.db_config(region)"
            )
        return region

    def db_config(self, region: str) -> dict[str, Any]:
        return self.lab.db_config(check_region(region))

    def final_read(self, region: str) -> dict[str, str]:
        """id -> content hash (the writer's way) of every document in `region`'s database,
        read by the harness on the lab host (no fault sits on that path)."""
        from drkit.measure.clients import content_hash

        rows = self.lab.database.clusters[check_region(region)].query(
            "SELECT id, body FROM documents", dbname=self.lab.settings.database
        )
        return {str(i): content_hash(str(body)) for i, body in rows}

    def api_url(self, region: str, source: str = PUBLIC) -> str:
        from drkit.lab.sut import api_url

        return api_url(self.lab.settings, region, source)

    def service_health(self, region: str) -> Health:
        return service_health_at(self.api_url(region))

    def index_health(self, region: str) -> Health:
        from drkit.lab.sut import index_url

        return index_health_at(index_url(self.lab.settings, region, source=PUBLIC), "lab")

    def consistency(self, source: str, replica: str) -> Consistency:
        """Database rows and vectors compared by id and content hash (writes in flight
        excluded: `settled_consistency`); the lower ratio wins."""
        from drkit.lab.sut import database_hashes, index_hashes

        return stores_consistency(
            source,
            replica,
            lambda region: database_hashes(self.lab, region),
            lambda region: index_hashes(self.lab, region),
        )

    def publish_replication(self, status: ReplicationStatus, source: str, replica: str) -> None:
        """Put the monitor's figures to CloudWatch (in the DR region, which survives the loss
        of the primary's) and keep the lag alarm that the lab evaluates."""
        cloudwatch = self.control.clients.cloudwatch(replica)
        dims: Any = [{"Name": "ReplicationPair", "Value": f"{source}->{replica}"}]
        if self.metric_scope:
            dims.append({"Name": "Drill", "Value": self.metric_scope[:255]})
        figures: dict[str, tuple[float, Any]] = {
            "ReplicationLagSeconds": (status.lag_seconds, "Seconds"),
            "ReplicationLagBytes": (float(status.lag_bytes), "Bytes"),
            "ReplicationConnected": (1.0 if status.is_connected else 0.0, "Count"),
        }
        if not math.isnan(status.data_consistency_ratio):
            figures["DataConsistencyRatio"] = (status.data_consistency_ratio, "None")
        cloudwatch.put_metric_data(
            Namespace=METRIC_NAMESPACE,
            MetricData=[
                {
                    "MetricName": name,
                    "Value": value,
                    "Unit": unit,
                    "Dimensions": dims,
                    "Timestamp": status.measured_at,
                }
                for name, (value, unit) in figures.items()
            ],
        )
        if replica not in self._alarmed:
            from drkit.aws.control import lag_alarm_request

            named = {d["Name"]: d["Value"] for d in dims}
            threshold = self.profile.lag_alarm_threshold_s
            cloudwatch.put_metric_alarm(
                **lag_alarm_request(LAG_ALARM, METRIC_NAMESPACE, named, threshold)
            )
            self._alarmed.add(replica)

    def lag_alarm_state(self, replica: str) -> str:
        return self.control.alarm_state(LAG_ALARM, replica)

    def dns_ttl(self) -> int:
        return int(self.control.public_record().ttl)

    def writer_region(self) -> str | None:
        return self.control.public_record().region

    # -- recovery actions ----------------------------------------------------------------
    def fence(self, region: str) -> FenceRegion:
        return FenceRegion(self.lab, check_region(region))

    def promote(self, region: str) -> PromoteDatabase:
        return PromoteDatabase(self.lab, check_region(region))

    def switch_dns(self, region: str) -> SwitchPublicName:
        return SwitchPublicName(self.control, check_region(region))

    def verify_serving(self, region: str, budget_s: float) -> Health:
        return verify_serving(self, region, budget_s)


def stores_consistency(
    source: str,
    replica: str,
    rows: Callable[[str], Mapping[str, str]],
    vectors: Callable[[str], Mapping[str, str]] | None,
) -> Consistency:
    """Database rows (and vectors, when the system has an index) of two regions compared by
    id and content hash, writes in flight excluded (`settled_consistency`); the lower ratio
    wins."""
    checks = [settled_consistency(lambda: rows(source), lambda: rows(replica), "rows")]
    if vectors is not None:
        checks.append(
            settled_consistency(lambda: vectors(source), lambda: vectors(replica), "vectors")
        )
    worst = min(checks, key=lambda c: c.ratio)
    detail: dict[str, Any] = {"source": source, "replica": replica}
    for check in checks:
        detail.update(check.detail)
    return Consistency(worst.ratio, worst.total, worst.missing, worst.extra, worst.stale, detail)


class ServedTarget(Protocol):
    public_name: str

    def client_resolver(self, timeout_s: float = 1.0) -> Any: ...

    def service_endpoint(self) -> tuple[str, int]: ...


def verify_serving(target: ServedTarget, region: str, budget_s: float) -> Health:
    """Through the public name, as the target's clients resolve it: a query answered by
    `region` and a write it acknowledges, tried until `budget_s` has passed."""
    deadline = time.monotonic() + budget_s
    last = "not tried"
    while time.monotonic() < deadline:
        try:
            return _serve_once(target, region)
        except DrillError as exc:
            last = str(exc)
        except httpx.HTTPError as exc:  # refused or timed out: not serving yet
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    return Health(
        False,
        f"{region} did not serve through {target.public_name} within {budget_s:.0f}s: {last}",
    )


def _serve_once(target: ServedTarget, region: str) -> Health:
    address = target.client_resolver().resolve(target.public_name)
    scheme, port = target.service_endpoint()
    base = f"{scheme}://{address}:{port}"
    query = httpx.get(f"{base}/query", params={"q": "quarterly filing"}, timeout=2.0)
    if query.status_code != 200 or query.headers.get("X-DR-Region") != region:
        raise DrillError(
            f"query via {address}: HTTP {query.status_code} from {query.headers.get('X-DR-Region')}"
        )
    doc = {
        "id": f"verify-{uuid.uuid4().hex[:12]}",
        "title": "failover verification",
        "body": "written by the failover orchestrator to prove the DR region accepts writes",
        "source": "drkit",
        "as_of": date.today().isoformat(),
    }
    write = httpx.post(f"{base}/documents", json=doc, timeout=3.0)
    body = _json(write)
    if write.status_code != 201 or body.get("region") != region:
        raise DrillError(
            f"write via {address}: HTTP {write.status_code} "
            f"{body.get('error') or body.get('outcome')} from {body.get('region')}"
        )
    return Health(
        True,
        f"{target.public_name} -> {address}: query and write {doc['id']} served by {region}",
        {"address": address, "write_id": doc["id"]},
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class FenceRegion:
    """Fence the old primary region: its service refuses writes until failback or reset."""

    kind = "lab.fence"
    phase = "fencing"

    def __init__(self, lab: Lab, region: str, reason: str = "failover") -> None:
        self.lab, self.region, self.reason = lab, region, reason
        self.path = lab.state / FENCE_FILE

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return f"fence {self.region} (its service refuses writes)"

    def apply(self) -> None:
        fence_region(self.path, self.region, self.reason)

    def undo(self) -> None:
        unfence_region(self.path, self.region)

    def verify_applied(self) -> bool:
        return self.region in read_fences(self.path)

    def verify_undone(self) -> bool:
        return self.region not in read_fences(self.path)


class PromoteDatabase:
    """`pg_promote()` on the region's database, over its public connection; waits for it."""

    kind = "lab.promote"
    phase = "promotion"

    def __init__(self, lab: Lab, region: str) -> None:
        self.lab, self.region = lab, region
        self.endpoint = PgEndpoint.from_config(region, lab.db_config(region))

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return f"promote {self.region}'s database to primary (pg_promote)"

    def apply(self) -> None:
        with self.endpoint.connect(timeout_s=5) as conn:
            conn.execute("SET statement_timeout = '15s'")
            if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                return  # already a primary: nothing to do, and verify says so
            done = conn.execute("SELECT pg_promote(wait => true, wait_seconds => 10)").fetchone()
        if not done or not done[0]:
            raise LabError(f"pg_promote on {self.region} did not finish within 10s")

    def verify_applied(self) -> bool:
        try:
            with self.endpoint.connect(timeout_s=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except (DrillError, psycopg.Error):
            return False
        return row is not None and row[0] is False

    def undo(self) -> None:
        raise RecoveryFailed(
            f"a promotion of {self.region} is undone by failback (pg_rewind, then a planned "
            "switchover) or by `drkit lab reset`, not in place"
        )

    def verify_undone(self) -> bool:
        return not self.verify_applied()


class SwitchPublicName:
    """UPSERT the public record to the region's public address; read back from Route 53 and
    from the lab DNS with a cache-free lookup."""

    kind = "lab.dns_switch"
    phase = "dns_switch"  # the measurement core's phase name

    def __init__(self, control: LabControlPlane, region: str) -> None:
        self.control, self.region = control, region
        self.previous = control.public_record().region

    def params(self) -> dict[str, Any]:
        return {"region": self.region, "previous": self.previous}

    def describe(self) -> str:
        return f"point {self.control.public_record().name} at {self.region}"

    def apply(self) -> None:
        self.control.point_public_name(self.region)

    def undo(self) -> None:
        if self.previous is not None:
            self.control.point_public_name(self.previous)

    def verify_applied(self) -> bool:
        record = self.control.public_record()
        served = self.control.resolver().resolve(record.name)
        return record.region == self.region and served == ingress_address(self.region, PUBLIC)

    def verify_undone(self) -> bool:
        return self.control.public_record().region == self.previous
