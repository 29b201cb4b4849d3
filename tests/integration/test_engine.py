"""The DR engine on the real lab: consistency, pre-flight, planned and unplanned failover."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
from pinecone import Pinecone

from drkit import (
    ComplianceReporter,
    DRVerifier,
    FailoverOrchestrator,
    ReplicationMonitor,
    execute_failover,
    generate_compliance_report,
    verify_dr_readiness,
)
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.lab import Lab
from drkit.lab.process import wait_until
from drkit.lab.sut import database_hashes, index_url
from drkit.lab.topology import PUBLIC, ingress_address
from drkit.targets.lab import LabTarget

pytestmark = pytest.mark.integration


@pytest.fixture
def monitor(fresh_lab: Lab) -> ReplicationMonitor:
    return ReplicationMonitor(fresh_lab.db_config("us-east-1"), fresh_lab.db_config("us-west-2"))


def write_via(lab: Lab, region: str, doc_id: str) -> httpx.Response:
    url = f"http://{ingress_address(region, PUBLIC)}:{lab.settings.ports.api}/documents"
    doc = {
        "id": doc_id,
        "title": "t",
        "body": "engine test",
        "source": "test",
        "as_of": "2024-12-13",
    }
    return httpx.post(url, json=doc, timeout=5)


def stale_vectors(lab: Lab, region: str, n: int) -> list[str]:
    """Rewrite `n` vectors of `region`'s index with a content hash that no row has."""
    ids = sorted(database_hashes(lab, region))[:n]
    with Pinecone(api_key="lab").index(host=index_url(lab.settings, region)) as index:
        fetched = index.fetch(ids=ids).vectors
        index.upsert(
            vectors=[
                {
                    "id": i,
                    "values": list(fetched[i].values),
                    "metadata": {**(fetched[i].metadata or {}), "content_hash": "sha256:stale"},
                }
                for i in ids
            ]
        )
    return ids


def test_consistency_counts_a_stale_vector_and_an_extra_row(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    [stale] = stale_vectors(fresh_lab, "us-west-2", 1)
    extra = "engine-extra-row"
    assert write_via(fresh_lab, "us-east-1", extra).status_code == 201
    wait_until(lambda: extra in database_hashes(fresh_lab, "us-west-2"), 10, "the row on DR")
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    with fresh_lab.database.east.connect(fresh_lab.settings.database) as conn:
        conn.execute("DELETE FROM documents WHERE id = %s", (extra,))
    status = monitor.check_replication_lag()
    detail = status.detail["consistency"]
    assert detail["rows"]["extra"] == 1 and detail["rows"]["missing"] == 0
    assert detail["vectors"]["stale"] == 1
    assert status.data_consistency_ratio < 1.0
    assert stale != extra


def test_planned_preflight_is_ready_on_a_healthy_lab(monitor: ReplicationMonitor) -> None:
    health = DRVerifier(monitor).run_health_checks()
    assert health["ready"], health["issues"]
    assert health["mode"] == "planned" and health["data_consistency"] == 1.0
    assert all(c["passed"] for c in health["checks"])


def test_planned_preflight_refuses_past_the_lag_threshold(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    verifier = DRVerifier(monitor, lag_threshold_s=0.5)
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    monitor.check_replication_lag()
    time.sleep(1.0)  # the lag under test builds up while replay is paused
    health = verifier.run_health_checks()
    assert not health["ready"]
    [issue] = health["issues"]
    assert issue.startswith("replication lag is ")
    assert issue.endswith("s, over the failover threshold of 0.5s")


def test_planned_preflight_refuses_drifted_vectors_and_names_the_counts(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    total = len(database_hashes(fresh_lab, "us-east-1"))
    drifted = max(1, total // 50)  # 2% stale: under the 99% threshold
    stale_vectors(fresh_lab, "us-west-2", drifted)
    health = DRVerifier(monitor).run_health_checks()
    assert not health["ready"]
    [issue] = [i for i in health["issues"] if i.startswith("data consistency")]
    assert f"stale {drifted})" in issue and "under the 99% threshold" in issue


def test_unplanned_preflight_decides_from_the_dr_side(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    verifier = DRVerifier(monitor)
    assert verifier.run_health_checks()["mode"] == "planned"
    control = LabControlPlane.of(fresh_lab)
    control.revoke_service("us-east-1", "db")
    try:
        control.wait_enforced("us-east-1", "db", PUBLIC, "blackholed", budget_s=5)
        health = verifier.run_health_checks()
    finally:
        control.authorize_service("us-east-1", "db")
    assert health["mode"] == "unplanned" and health["ready"], health["issues"]
    names = {c["name"] for c in health["checks"]}
    assert "age of the last sample" in names and "replication connected" not in names


def test_a_planned_failover_promotes_fences_switches_and_serves(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    result = FailoverOrchestrator(DRVerifier(monitor)).execute_failover("quarterly switchover")
    assert result.success, result.errors
    assert result.mode == "planned" and result.target_region == "us-west-2"
    assert [p.name for p in result.phases] == [
        "pre-flight",
        "fencing",
        "promotion",
        "dns switch",
        "propagation wait",
        "verification",
    ]
    target = LabTarget(fresh_lab)
    assert target.writer_region() == "us-west-2"
    assert not fresh_lab.database.west.in_recovery()
    refused = write_via(fresh_lab, "us-east-1", "after-switchover")
    assert refused.status_code == 503 and refused.json()["error"] == "region fenced"


def test_an_unplanned_failover_holds_its_fence_after_the_fault_heals(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    verifier = DRVerifier(monitor)
    assert verifier.run_health_checks()["ready"]  # the last sample before the outage
    control = LabControlPlane.of(fresh_lab)
    for service in ("db", "api"):
        control.revoke_service("us-east-1", service)
    try:
        for service in ("db", "api"):
            control.wait_enforced("us-east-1", service, PUBLIC, "blackholed", budget_s=5)
        result = FailoverOrchestrator(verifier).execute_failover("us-east-1 region outage")
    finally:
        for service in ("db", "api"):
            control.authorize_service("us-east-1", service)
    assert result.success and result.mode == "unplanned", result.errors
    control.wait_enforced("us-east-1", "api", PUBLIC, "allowed", budget_s=5)
    acks = [write_via(fresh_lab, "us-east-1", f"split-{i}") for i in range(5)]
    assert [a.status_code for a in acks] == [503] * 5
    assert {a.json()["error"] for a in acks} == {"region fenced"}
    assert not fresh_lab.database.east.in_recovery()  # the old primary runs, and is fenced


def test_the_whole_flow_in_one_go(fresh_lab: Lab) -> None:
    monitor = ReplicationMonitor(fresh_lab.db_config("us-east-1"), fresh_lab.db_config("us-west-2"))
    status = monitor.check_replication_lag()
    health = verify_dr_readiness(monitor)
    verifier = DRVerifier(monitor)
    result = execute_failover(verifier, "Hard drive failure in US-EAST-1")
    report = ComplianceReporter().generate_quarterly_report(
        test_date=datetime(2024, 12, 15, 14, 0), failover_result=result, replication_status=status
    )
    same = generate_compliance_report(datetime(2024, 12, 15, 14, 0), result, status)
    assert health["ready"] and result.success, (health["issues"], result.errors)
    assert report["quarter"] == "2024-Q4" and same["quarter"] == "2024-Q4"
    assert report["overall_result"]["status"] == "TEST PASSED"
    assert 0 < report["rto_analysis"]["measured_minutes"] < 15
    assert report["rpo_analysis"]["basis"].startswith("estimate")
