"""Fault protocol, registry and bounded calls; the twins honour the protocol's promises."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drkit.errors import ConfigError
from drkit.faults.base import CallTimedOut, Fault, RecoveryAction, Registry, call_bounded
from drkit.faults.twins import FileFlagFault, Promote, RegionOutage, ReplicationLinkCut
from drkit.measure.twins import EAST, WEST, TwoRegionService

pytestmark = pytest.mark.unit


def test_call_bounded_returns_the_value_and_reraises_the_error() -> None:
    assert call_bounded(lambda: 42, 1.0, "answer") == 42
    with pytest.raises(ZeroDivisionError):
        call_bounded(lambda: 1 / 0, 1.0, "division")


def test_call_bounded_gives_up_after_its_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(CallTimedOut, match=r"hang did not return within 0\.1s"):
        call_bounded(lambda: time.sleep(5), 0.1, "hang")
    assert time.monotonic() - started < 2


def _service_faults(service: TwoRegionService, tmp_path: Path) -> list[Fault]:
    return [
        FileFlagFault(str(tmp_path / "flag")),
        RegionOutage(service, EAST),
        ReplicationLinkCut(service),
    ]


def test_every_twin_fault_heals_safely_before_inject_and_twice(tmp_path: Path) -> None:
    service = TwoRegionService()
    for fault in _service_faults(service, tmp_path):
        assert isinstance(fault, Fault)
        fault.heal()  # before inject: nothing to do, no error
        assert fault.verify_healed()
        fault.inject()
        assert fault.verify_injected() and not fault.verify_healed()
        fault.heal()
        fault.heal()
        assert fault.verify_healed(), fault.describe()


def test_recovery_twins_are_recovery_actions_not_faults() -> None:
    action = Promote(TwoRegionService(), WEST)
    assert isinstance(action, RecoveryAction) and not isinstance(action, Fault)
    action.apply()
    assert action.verify_applied()
    action.undo()
    assert action.verify_undone()


def test_the_registry_rebuilds_a_fault_from_kind_and_params(tmp_path: Path) -> None:
    registry = Registry()
    registry.register(FileFlagFault.kind, FileFlagFault)
    original = FileFlagFault(str(tmp_path / "flag"), content="x")
    rebuilt = registry.build(original.kind, original.params())
    assert rebuilt.params() == original.params()
    assert registry.module_of(original.kind) == "drkit.faults.twins"


def test_the_registry_names_what_it_knows_when_a_kind_is_missing() -> None:
    registry = Registry()
    registry.register("a.known", FileFlagFault)
    with pytest.raises(ConfigError, match=r"no factory for fault kind 'x.unknown'.*a\.known"):
        registry.build("x.unknown", {}, module="elsewhere.faults")


def test_a_kind_cannot_be_registered_twice_by_different_factories() -> None:
    registry = Registry()
    registry.register("k", FileFlagFault)
    registry.register("k", FileFlagFault)  # same factory again: harmless
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("k", RegionOutage)
