"""Verdicts: what a checker concludes, and how several conclusions merge.

``valid`` is True, False or ``"unknown"``; merging ranks False above unknown above True, so
one breached objective fails the lot and missing evidence is never read as a pass. A checker
that crashes yields ``"unknown"`` instead of raising (see ``checker``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, ParamSpec

UNKNOWN: Final = "unknown"
Validity = bool | Literal["unknown"]
_RANK: Final[dict[Validity, int]] = {True: 0, UNKNOWN: 1, False: 2}


@dataclass(frozen=True)
class Verdict:
    """One checker's conclusion: valid, the measured value against its objective, and why."""

    checker: str
    valid: Validity
    reason: str
    value: float | int | None = None
    objective: float | int | None = None
    unit: str = "s"
    error_bar: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.valid not in _RANK:
            raise ValueError(f"Verdict.valid must be True, False or 'unknown', got {self.valid!r}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for Allure attachments and the evidence package)."""
        return {
            "checker": self.checker,
            "valid": self.valid,
            "reason": self.reason,
            "value": _finite_or_none(self.value),
            "objective": self.objective,
            "unit": self.unit,
            "error_bar": self.error_bar,
            "details": dict(self.details),
        }

    def summary(self) -> str:
        """One line: checker, validity, measured value against objective, reason."""
        state = {True: "pass", False: "FAIL", UNKNOWN: "unknown"}[self.valid]
        return f"{self.checker}: {state}: {self.reason}"


def _finite_or_none(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def merge_validity(values: Iterable[Validity]) -> Validity:
    """The worst of ``values`` (False > unknown > True); no values at all is ``unknown``."""
    ranked = [_RANK[v] for v in values]
    if not ranked:
        return UNKNOWN
    worst = max(ranked)
    return next(v for v, r in _RANK.items() if r == worst)


def merge_verdicts(verdicts: Iterable[Verdict], checker: str = "all") -> Verdict:
    """One verdict for many: the worst validity, with the reasons of those that set it."""
    items = list(verdicts)
    valid = merge_validity(v.valid for v in items)
    if not items:
        return Verdict(checker, UNKNOWN, "no checker ran, so nothing was proven")
    culprits = sorted((v for v in items if v.valid == valid), key=lambda v: v.checker)
    reason = "; ".join(v.summary() for v in culprits)
    return Verdict(checker, valid, reason, details={v.checker: v.to_json() for v in items})


P = ParamSpec("P")


def checker(name: str) -> Callable[[Callable[P, Verdict]], Callable[P, Verdict]]:
    """Make a checker crash-safe: an exception becomes an ``unknown`` verdict naming it."""

    def decorate(fn: Callable[P, Verdict]) -> Callable[P, Verdict]:
        @functools.wraps(fn)
        def safe(*args: P.args, **kwargs: P.kwargs) -> Verdict:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                return Verdict(
                    name,
                    UNKNOWN,
                    f"checker {name} crashed ({type(exc).__name__}: {exc}); the history could "
                    "not be judged: fix the checker or inspect the history file",
                    details={"error": repr(exc)},
                )

        return safe

    return decorate
