"""The DR control API on the real lab: every endpoint, and every refusal."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from drkit.api import create_app
from drkit.lab.lab import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def api(fresh_lab: Lab) -> TestClient:
    return TestClient(create_app())


def test_replication_status_is_measured(api: TestClient) -> None:
    body = api.get("/replication/status").json()
    assert body["state"] == "streaming" and body["is_connected"] is True
    assert body["lag_bytes"] >= 0 and body["data_consistency_ratio"] == 1.0


def test_readiness_runs_the_preflight(api: TestClient) -> None:
    body = api.get("/readiness").json()
    assert body["ready"] is True and body["mode"] == "planned" and body["issues"] == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"confirm_target": "us-west-2"}, "reason: Field required"),
        ({"reason": "drill"}, "confirm_target: Field required"),
        ({"reason": "drill", "confirm_target": "us-west-2", "extra": 1}, "extra: Extra inputs"),
        (
            {"reason": "drill", "confirm_target": "us-east-1"},
            "confirm_target 'us-east-1' does not name the failover target; type 'us-west-2'",
        ),
    ],
)
def test_failover_is_refused_without_a_reason_and_a_confirmation(
    api: TestClient, payload: dict[str, object], message: str
) -> None:
    response = api.post("/failover", json=payload)
    assert response.status_code == 422
    assert message in response.json()["error"]


def test_the_report_needs_a_failover_first(api: TestClient) -> None:
    response = api.get("/reports/quarterly", params={"test_date": "2024-12-15T14:00:00"})
    assert response.status_code == 409 and "POST /failover first" in response.json()["error"]


def test_failover_then_the_quarterly_report(api: TestClient) -> None:
    response = api.post(
        "/failover", json={"reason": "quarterly DR test", "confirm_target": "us-west-2"}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["success"] and response.json()["target_region"] == "us-west-2"
    report = api.get("/reports/quarterly", params={"test_date": "2024-12-15T14:00:00"}).json()
    assert report["quarter"] == "2024-Q4"
    assert report["overall_result"]["status"] == "TEST PASSED"


def test_cost_and_its_bad_fields(api: TestClient) -> None:
    assert api.get("/cost").json()["break_even_years"] == 4.0
    bad = api.get("/cost", params={"outage_hours": "-2"})
    assert bad.status_code == 422 and "outage_hours" in bad.json()["error"]


def test_the_openapi_page_is_served(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    assert "/failover" in api.get("/openapi.json").json()["paths"]
