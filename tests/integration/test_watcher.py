"""The watcher on the real lab: it fails over after its threshold of failed checks, not before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from drkit.clients.toxiproxy import Toxic
from drkit.lab.lab import Lab
from drkit.lab.process import wait_until
from drkit.lab.topology import PUBLIC, proxy_name
from drkit.targets.lab import LabTarget

pytestmark = pytest.mark.integration

BLACKHOLE = (
    Toxic("outage-down", "timeout", "downstream", 1.0, {"timeout": 0}),
    Toxic("outage-up", "timeout", "upstream", 1.0, {"timeout": 0}),
)


@pytest.fixture
def watching(fresh_lab: Lab) -> Iterator[Lab]:
    fresh_lab.watcher.start()
    wait_until(lambda: state(fresh_lab).get("checks", 0) >= 2, 10, "the watcher's first checks")
    yield fresh_lab
    fresh_lab.watcher.stop()


def state(lab: Lab) -> dict[str, Any]:
    try:
        return dict(json.loads(lab.watcher.status_file.read_text()))
    except (OSError, ValueError):
        return {}


def cut_public_api(lab: Lab) -> None:
    with lab.toxiproxy.client() as client:
        for toxic in BLACKHOLE:
            client.add_toxic(proxy_name("us-east-1", "api", PUBLIC), toxic)


def restore_public_api(lab: Lab) -> None:
    with lab.toxiproxy.client() as client:
        for toxic in BLACKHOLE:
            client.remove_toxic(proxy_name("us-east-1", "api", PUBLIC), toxic.name)


def test_a_failure_shorter_than_the_threshold_does_not_fail_over(watching: Lab) -> None:
    profile = watching.settings.profile
    cut_public_api(watching)
    try:
        wait_until(
            lambda: state(watching).get("consecutive_failures", 0) >= 1,
            5,
            "the watcher to see the first failed check",
            interval_s=0.01,
        )
    finally:
        restore_public_api(watching)
    wait_until(
        lambda: state(watching).get("consecutive_failures") == 0,
        5,
        "the watcher to see the endpoint healthy again",
    )
    time.sleep(profile.health_interval_s * (profile.failure_threshold + 1))  # room to misfire
    after = state(watching)
    assert after["state"] == "watching" and after["failover"] == {}
    assert LabTarget(watching).writer_region() == "us-east-1"


def test_a_failure_past_the_threshold_fails_over_once(watching: Lab) -> None:
    profile = watching.settings.profile
    cut = time.time()
    cut_public_api(watching)
    try:
        wait_until(
            lambda: state(watching).get("state") in ("failed_over", "failover_failed"),
            30,
            "the watcher's failover",
        )
    finally:
        restore_public_api(watching)
    final = state(watching)
    assert final["state"] == "failed_over", final["failover"]
    detected = final["failover_started_at"] - cut
    floor = profile.health_interval_s * (profile.failure_threshold - 1)
    assert detected >= floor, f"failed over {detected:.2f}s after the cut, before {floor}s"
    assert final["consecutive_failures"] == profile.failure_threshold
    assert final["failover"]["mode"] == "unplanned" and final["failover"]["success"]
    assert LabTarget(watching).writer_region() == "us-west-2"
