"""The lab's alarm and health-check evaluation, as pure functions plus real loopback probes."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drkit.errors import LabError
from drkit.lab.evaluators import (
    ALARM,
    INSUFFICIENT_DATA,
    MOTO_UNCHECKED,
    OK,
    AlarmSpec,
    HealthCheckSpec,
    calculated,
    decide,
    health_check_status,
    initial_status,
    observe,
    period_windows,
    probe,
)

pytestmark = pytest.mark.unit


def alarm(**changes: object) -> AlarmSpec:
    spec = AlarmSpec(
        region="us-east-1",
        name="lag",
        namespace="drkit",
        metric="ReplicationLagSeconds",
        dimensions=(),
        statistic="Maximum",
        unit=None,
        period=10,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        threshold=5.0,
        comparison="GreaterThanThreshold",
        treat_missing="missing",
        state=None,
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def test_periods_are_aligned_complete_and_oldest_first() -> None:
    assert period_windows(1005.3, 10, 3) == [(970, 980), (980, 990), (990, 1000)]
    assert period_windows(1020.0, 60, 1) == [(960, 1020)]  # a period ending now is complete


@pytest.mark.parametrize(
    ("values", "state"),
    [
        ([None, None], INSUFFICIENT_DATA),
        ([None, 12.0], INSUFFICIENT_DATA),  # one breach, one unknown: still open
        ([12.0, 12.0], ALARM),
        ([12.0, 1.0], OK),
        ([1.0, 5.0], OK),  # 5 is not greater than 5
    ],
)
def test_an_alarm_needs_its_evaluation_periods_to_breach(
    values: list[float | None], state: str
) -> None:
    assert decide(alarm(), values).state == state


def test_m_out_of_n_datapoints_alarm() -> None:
    spec = alarm(evaluation_periods=3, datapoints_to_alarm=2)
    assert decide(spec, [12.0, 1.0, 12.0]).state == ALARM
    assert decide(spec, [1.0, 1.0, 12.0]).state == OK


def test_an_open_outcome_keeps_the_current_state() -> None:
    assert decide(alarm(state=ALARM), [None, 1.0]).state == OK  # 0 + 1 missing < 2
    assert decide(alarm(state=OK), [None, 12.0]).state == OK


@pytest.mark.parametrize(
    ("treat", "current", "state"),
    [
        ("missing", OK, INSUFFICIENT_DATA),
        ("breaching", OK, ALARM),
        ("notBreaching", ALARM, OK),
        ("ignore", ALARM, ALARM),
    ],
)
def test_treat_missing_data(treat: str, current: str, state: str) -> None:
    assert decide(alarm(treat_missing=treat, state=current), [None, None]).state == state


@pytest.mark.parametrize(
    ("comparison", "value", "state"),
    [
        ("GreaterThanOrEqualToThreshold", 5.0, ALARM),
        ("LessThanThreshold", 4.9, ALARM),
        ("LessThanOrEqualToThreshold", 5.1, OK),
    ],
)
def test_comparison_operators(comparison: str, value: float, state: str) -> None:
    assert decide(alarm(comparison=comparison), [value, value]).state == state


def test_the_reason_shows_the_datapoints_and_the_threshold() -> None:
    reason = decide(alarm(), [12.0, 7.5]).reason
    assert "2 out of the last 2 datapoints [12, 7.5] were greater than the threshold (5)" in reason


def test_a_described_alarm_before_evaluation_has_no_state_and_math_is_unsupported() -> None:
    described = {
        "AlarmName": "lag",
        "MetricName": "m",
        "Namespace": "n",
        "Statistic": "Average",
        "Period": 10,
        "EvaluationPeriods": 3,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "StateValue": "OK",
        "StateReason": MOTO_UNCHECKED,
    }
    spec = AlarmSpec.from_api("us-west-2", described)
    assert (spec.state, spec.datapoints_to_alarm, spec.unsupported) == (None, 3, None)
    math = AlarmSpec.from_api("us-west-2", {**described, "Metrics": [{"Id": "m1"}]})
    assert "metric math" in (math.unsupported or "")


def check(**changes: object) -> HealthCheckSpec:
    spec = HealthCheckSpec(
        id="hc-1",
        type="HTTP",
        ip="127.0.1.20",
        port=25480,
        path="/health",
        fqdn=None,
        search_string=None,
        interval=10,
        failure_threshold=3,
        inverted=False,
        disabled=False,
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def test_a_health_check_turns_unhealthy_at_its_threshold_not_before() -> None:
    status = initial_status(check())
    assert status.healthy
    for n in (1, 2):
        status = observe(status, False, "Failure", at=float(n))
        assert status.healthy and status.consecutive_failures == n
    status = observe(status, False, "Failure", at=3.0)
    assert (status.healthy, status.changed_at, status.probes) == (False, 3.0, 3)
    for n in (4, 5):
        status = observe(status, True, "Success", at=float(n))
        assert not status.healthy
    assert observe(status, True, "Success", at=6.0).healthy


def test_a_success_resets_the_failure_count() -> None:
    status = initial_status(check(failure_threshold=2))
    for ok in (False, True, False):
        status = observe(status, ok, "", at=0.0)
    assert status.healthy and status.consecutive_failures == 1


def test_inverted_and_disabled_checks() -> None:
    inverted = initial_status(check(inverted=True, failure_threshold=1))
    assert not inverted.healthy  # Route 53: unhealthy until it has data
    assert observe(inverted, False, "", at=1.0).healthy
    assert initial_status(check(disabled=True, inverted=True)).healthy


def test_a_calculated_check_counts_healthy_children() -> None:
    parent = check(id="p", type="CALCULATED", children=("a", "b"), health_threshold=2)
    a, b = initial_status(check(id="a")), initial_status(check(id="b"))
    both = calculated(parent, initial_status(parent), {"a": a, "b": b}, at=1.0)
    assert both.healthy
    one = calculated(parent, both, {"a": a, "b": replace(b, healthy=False)}, at=2.0)
    assert (one.healthy, one.changed_at) == (False, 2.0)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if self.path == "/broken" else 200
        body = b'{"status": "ok", "region": "us-east-1"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_dns(name: str) -> str:
    raise AssertionError(f"no name should be resolved, got {name}")


def test_http_probes_accept_2xx_and_match_strings(http_port: int) -> None:
    target = check(ip="127.0.0.1", port=http_port)
    assert probe(target, no_dns) == (True, "Success: HTTP Status Code 200")
    ok, seen = probe(replace(target, path="/broken"), no_dns)
    assert not ok and "HTTP Status Code 500" in seen
    matching = replace(target, type="HTTP_STR_MATCH", search_string='"region": "us-east-1"')
    assert probe(matching, no_dns)[0]
    assert not probe(replace(matching, search_string="us-west-2"), no_dns)[0]


def test_tcp_and_http_probes_fail_on_a_stopped_endpoint() -> None:
    port = closed_port()
    assert not probe(check(type="TCP", ip="127.0.0.1", port=port), no_dns)[0]
    ok, seen = probe(check(ip="127.0.0.1", port=port), no_dns)
    assert not ok and seen.startswith("Failure: http://127.0.0.1")


def test_an_fqdn_check_resolves_through_the_given_resolver(http_port: int) -> None:
    target = check(ip=None, fqdn="rag.lab.drkit.test", port=http_port)
    assert probe(target, lambda name: "127.0.0.1")[0]


def test_health_check_status_reads_the_evaluators_file(tmp_path: Path) -> None:
    path = tmp_path / "evaluator.json"
    status = observe(initial_status(check()), False, "Failure: refused", at=5.0)
    path.write_text(json.dumps({"health_checks": {"hc-1": {**status.__dict__, "x": 1}}}))
    assert health_check_status(path, "hc-1") == status
    with pytest.raises(LabError, match=r"no health check 'hc-9'.*known: \['hc-1'\]"):
        health_check_status(path, "hc-9")
    with pytest.raises(LabError, match="is the evaluator running"):
        health_check_status(tmp_path / "absent.json", "hc-1")
