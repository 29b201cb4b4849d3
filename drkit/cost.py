"""Break-even of a hot DR region: how many years of its cost one avoided outage pays for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from drkit.errors import ConfigError


@dataclass(frozen=True)
class CostInputs:
    monthly_dr_cost: float = 250_000.0
    outage_cost_per_hour: float = 30_000.0
    outage_hours: float = 4.0
    indirect_multiplier: float = 100.0
    currency: str = "INR"

    def __post_init__(self) -> None:
        for name in (
            "monthly_dr_cost",
            "outage_cost_per_hour",
            "outage_hours",
            "indirect_multiplier",
        ):
            value = getattr(self, name)
            finite = isinstance(value, int | float) and not isinstance(value, bool)
            if not finite or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"cost input {name}={value!r} must be a positive number")


@dataclass(frozen=True)
class BreakEven:
    inputs: CostInputs
    annual_dr_cost: float
    outage_cost: float
    break_even_years: float

    def to_dict(self) -> dict[str, Any]:
        i = self.inputs
        return {
            "currency": i.currency,
            "monthly_dr_cost": i.monthly_dr_cost,
            "outage_cost_per_hour": i.outage_cost_per_hour,
            "outage_hours": i.outage_hours,
            "indirect_multiplier": i.indirect_multiplier,
            "annual_dr_cost": self.annual_dr_cost,
            "outage_cost": self.outage_cost,
            "break_even_years": self.break_even_years,
            "statement": self.statement(),
        }

    def statement(self) -> str:
        i = self.inputs
        return (
            f"One avoided {i.outage_hours:g}-hour outage costs "
            f"{self.outage_cost:,.0f} {i.currency} "
            f"(direct {i.outage_cost_per_hour:,.0f}/hour x {i.indirect_multiplier:g} for indirect "
            f"costs) and pays for {self.break_even_years:.1f} years of hot DR at "
            f"{self.annual_dr_cost:,.0f} {i.currency}/year."
        )


def break_even(inputs: CostInputs | None = None) -> BreakEven:
    """Years of hot-DR spend that one avoided outage covers."""
    i = inputs or CostInputs()
    annual = i.monthly_dr_cost * 12
    outage = i.outage_cost_per_hour * i.outage_hours * i.indirect_multiplier
    return BreakEven(i, annual, outage, outage / annual)
