"""The orchestrator's phases and refusals against in-memory twins (the lab tests use the lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.errors import ConfigError
from drkit.failover.orchestrator import FailoverOrchestrator, execute_failover
from drkit.failover.result import PHASES
from drkit.failover.verifier import DRVerifier
from drkit.faults.journal import read_ledger
from drkit.faults.ledger import Ledger
from drkit.faults.twins import Fence, Promote, SwitchDns
from drkit.measure.twins import ADDRESSES, EAST, WEST, TwoRegionService
from drkit.targets.base import Health
from tests.unit.test_verifier import GOOD, LOST, ScriptedMonitor, TwinTarget

pytestmark = pytest.mark.unit


class FailoverTwin(TwinTarget):
    def __init__(self, service: TwoRegionService, serving_ok: bool = True) -> None:
        super().__init__()
        self.service = service
        self.serving_ok = serving_ok

    def region_of_db(self, config: object) -> str:
        return WEST if config is self.dr_config else EAST  # type: ignore[attr-defined]

    def dns_ttl(self) -> int:
        return 1

    def fence(self, region: str) -> Fence:
        return Fence(self.service, region)

    def promote(self, region: str) -> Promote:
        return Promote(self.service, region)

    def switch_dns(self, region: str) -> SwitchDns:
        return SwitchDns(self.service, region, EAST)

    def verify_serving(self, region: str, budget_s: float) -> Health:
        if not self.serving_ok:
            return Health(False, f"{region} did not answer within {budget_s:.0f}s")
        ack = self.service.write(self.service.resolve(self.service.name), "verify-1", "x")
        return Health(ack.region == region, f"write acknowledged by {ack.region}")


def orchestrator(tmp_path: Path, *samples, serving_ok: bool = True):  # type: ignore[no-untyped-def]
    service = TwoRegionService()
    monitor = ScriptedMonitor(*samples)
    target = FailoverTwin(service, serving_ok)
    target.dr_config = monitor.dr_config  # type: ignore[attr-defined]
    ledger = Ledger(tmp_path / "run", state_dir=tmp_path / "state", handle_signals=False)
    slept: list[float] = []
    orch = FailoverOrchestrator(
        DRVerifier(monitor, target=target), ledger=ledger, sleep=slept.append
    )
    return orch, service, ledger, slept


def test_a_ready_failover_runs_every_phase_for_real(tmp_path: Path) -> None:
    orch, service, ledger, slept = orchestrator(tmp_path, GOOD)
    with ledger:
        result = orch.execute_failover("Hard drive failure in US-EAST-1")
    assert result.success, result.errors
    assert [p.name for p in result.phases] == list(PHASES)
    assert service.is_fenced(EAST) and service.is_primary(WEST)
    assert service.resolve(service.name) == ADDRESSES[WEST]
    assert slept == [1] and result.mode == "planned"
    assert result.data_loss_is_estimate and result.rto_minutes > 0
    state = read_ledger(tmp_path / "run" / "ledger.jsonl")
    assert [r.category for r in state.records] == ["recovery"] * 3
    assert state.open_faults == ()  # recovery actions are not faults to heal


def test_a_failed_preflight_refuses_and_changes_nothing(tmp_path: Path) -> None:
    orch, service, ledger, _ = orchestrator(
        tmp_path, GOOD.__class__(**{**GOOD.__dict__, "lag_seconds": 900.0})
    )
    with ledger:
        result = orch.execute_failover("drill")
    assert not result.success
    assert "pre-flight refused: replication lag is 900.0s" in result.errors[0]
    assert [p.name for p in result.phases] == ["pre-flight"] and not result.phases[0].ok
    assert service.is_primary(EAST) and not service.is_primary(WEST) and not service.is_fenced(EAST)


def test_force_goes_past_a_failed_preflight_and_records_it(tmp_path: Path) -> None:
    orch, service, ledger, _ = orchestrator(tmp_path, LOST)
    with ledger:
        result = orch.execute_failover("region lost", force=True)
    assert result.success and result.forced and result.mode == "unplanned"
    assert result.errors[0].startswith("forced past a failed pre-flight: no replication sample")
    assert service.is_primary(WEST)


def test_a_failed_verification_is_not_a_success(tmp_path: Path) -> None:
    orch, _, ledger, _ = orchestrator(tmp_path, GOOD, serving_ok=False)
    with ledger:
        result = orch.execute_failover("drill")
    assert not result.success and result.phase("verification") is not None
    assert any("did not answer" in e for e in result.errors)
    assert (
        "us-east-1 remains fenced" in result.errors[-1] and "drkit lab reset" in result.errors[-1]
    )


def test_an_unexpected_error_still_returns_an_account(tmp_path: Path) -> None:
    orch, _, ledger, _ = orchestrator(tmp_path, GOOD)

    def broken(region: str, budget_s: float) -> Health:
        raise ConnectionResetError("peer went away")

    orch.verifier.target.verify_serving = broken  # type: ignore[attr-defined]
    with ledger:
        result = orch.execute_failover("drill")
    assert not result.success
    assert "ConnectionResetError: peer went away" in result.errors
    assert result.to_dict()["phases"][-1] == {**result.to_dict()["phases"][-1], "ok": False}


def test_a_reason_is_required(tmp_path: Path) -> None:
    orch, _, ledger, _ = orchestrator(tmp_path, GOOD)
    with ledger, pytest.raises(ConfigError, match="needs a reason"):
        execute_failover(orch, "  ")


def test_the_propagation_wait_covers_the_old_records_ttl(tmp_path: Path) -> None:
    """Resolvers cached the old answer for the old record's TTL: a switch that also shortens
    the TTL must still wait out the old one before verifying."""
    orch, service, ledger, slept = orchestrator(tmp_path, GOOD)
    switched = lambda: service.resolve(service.name) == ADDRESSES[WEST]  # noqa: E731
    orch.target.dns_ttl = lambda: 1 if switched() else 5  # type: ignore[method-assign]
    with ledger:
        result = orch.execute_failover("a planned move with a long TTL")
    assert result.success, result.errors
    assert slept == [5]


def test_without_fencing_the_failover_skips_the_phase_and_says_so(tmp_path: Path) -> None:
    orch, service, ledger, _ = orchestrator(tmp_path, GOOD)
    with ledger:
        result = orch.execute_failover("negative control", fence=False)
    assert result.success and "fencing" not in [p.name for p in result.phases]
    assert not service.is_fenced(EAST)
    assert any("was not fenced" in e for e in result.errors)


def test_a_failover_result_survives_its_dict(tmp_path: Path) -> None:
    """The watcher reports its failover as a dict; the compliance report rebuilds it."""
    from drkit.failover.result import FailoverResult

    orch, _, ledger, _ = orchestrator(tmp_path, GOOD)
    with ledger:
        result = orch.execute_failover("round trip")
    assert FailoverResult.from_dict(result.to_dict()).to_dict() == result.to_dict()
