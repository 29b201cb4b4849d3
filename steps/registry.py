"""drkit's step decorators: pytest-bdd's, plus the drill-outcome mapping and a registry.

A Given step that fails makes the drill `inconclusive`; a When step whose fault does not take
makes it `not_exercised`, and one whose awaited event never comes makes it `fail`; anything
else unexpected is `unknown`. Every registered step is listed in `STEPS` (for the closest-step
hint and docs/steps.md).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import pytest_bdd
import pytest_bdd.parsers

from drkit.drill import DrillOutcomeError
from drkit.errors import (
    ConfigError,
    FaultInjectionFailed,
    TargetUnreachable,
    UnsafeDrillRefused,
)
from drkit.measure.outcome import Outcome, failure_message

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Planned:
    """What a step would do, for the registered plan: written before the drill runs, read by
    the approver. ``text`` and ``resources`` are formatted with the step's parameters;
    ``sets`` maps an objective (rto_s, rpo_s) to a function of the parameters."""

    kind: str  # objective, fault, recovery, workload, setup, check
    text: str
    resources: tuple[str, ...] = ()
    destructive: bool = False
    sets: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = ()

    def render(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text.format(**args),
            "resources": [r.format(**args) for r in self.resources],
            "destructive": self.destructive,
            "sets": {name: fn(args) for name, fn in self.sets},
        }


@dataclass(frozen=True)
class StepDoc:
    keyword: str
    pattern: str
    doc: str
    example: str
    parser: Any = None
    fn: Callable[..., Any] | None = None


STEPS: list[StepDoc] = []
DEFAULT_KIND = {"Given": "setup", "When": "action", "Then": "check"}


def _outcome_of(keyword: str, exc: Exception) -> Outcome:
    if keyword == "Given" or isinstance(exc, ConfigError | UnsafeDrillRefused):
        return Outcome.INCONCLUSIVE  # refused before its fault: nothing was tested
    if isinstance(exc, FaultInjectionFailed):
        return Outcome.NOT_EXERCISED
    if keyword == "When" and isinstance(exc, TimeoutError):
        return Outcome.FAIL  # the awaited recovery did not come within its budget
    if isinstance(exc, TargetUnreachable):
        return Outcome.UNKNOWN
    return Outcome.UNKNOWN


def _guard(keyword: str, pattern: str, fn: F) -> F:
    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DrillOutcomeError:
            raise
        except Exception as exc:
            outcome = _outcome_of(keyword, exc)
            reason = f"{keyword} step '{pattern}' failed: {type(exc).__name__}: {exc}"
            if isinstance(exc, ConfigError | UnsafeDrillRefused):
                # a user's input or a refusal: one line, no traceback through drkit's frames
                pytest.fail(str(failure_message(outcome, reason)), pytrace=False)
            raise DrillOutcomeError(outcome, reason) from exc

    return step  # type: ignore[return-value]


def _register(keyword: str, decorator: Callable[..., Any]) -> Callable[..., Callable[[F], F]]:
    def factory(pattern: Any, *, example: str = "", **kw: Any) -> Callable[[F], F]:
        text = pattern if isinstance(pattern, str) else str(pattern.name)  # a pytest-bdd parser
        parser = pytest_bdd.parsers.string(pattern) if isinstance(pattern, str) else pattern

        def decorate(fn: F) -> F:
            doc = (fn.__doc__ or "").strip()
            STEPS.append(StepDoc(keyword, text, doc, example or text, parser, fn))
            decorator(pattern, stacklevel=2, **kw)(_guard(keyword, text, fn))
            return fn

        return decorate

    return factory


given = _register("Given", pytest_bdd.given)
when = _register("When", pytest_bdd.when)
then = _register("Then", pytest_bdd.then)


def in_range(value: int, low: int, high: int, what: str) -> int:
    """A step parameter within [low, high], or the error naming it and the allowed range."""
    if not low <= value <= high:
        raise ConfigError(f"{what} {value}: out of range; use {low} to {high}")
    return value


def check_blips(ms: int, times: int, gap: int) -> None:
    in_range(ms, 1, 60_000, "blip length (milliseconds)")
    in_range(times, 1, 20, "number of blips")
    in_range(gap, 0, 60, "seconds between blips")


def plan_step(keyword: str, text: str) -> dict[str, Any]:
    """What the step `keyword text` would do, from its registration alone (nothing runs);
    kind `unknown` when no registered step matches (the run itself reports it with hints)."""
    from steps.plans import PLANS

    for step in STEPS:
        if step.keyword == keyword and step.parser.is_matching(text):
            args = step.parser.parse_arguments(text) or {}
            if (planned := PLANS.get((keyword, step.pattern))) is not None:
                return planned.render(args)
            summary = step.doc.split("\n\n")[0].replace("\n", " ")
            return {
                "kind": DEFAULT_KIND[keyword],
                "text": summary or text,
                "resources": [],
                "destructive": False,
                "sets": {},
            }
    return {
        "kind": "unknown",
        "text": f"unknown step '{keyword} {text}'",
        "resources": [],
        "destructive": False,
        "sets": {},
    }


def closest_steps(text: str, n: int = 3) -> list[str]:
    patterns = [f"{s.keyword} {s.pattern}" for s in STEPS]
    return difflib.get_close_matches(text, patterns, n=n, cutoff=0.3)


def render_markdown() -> str:
    """docs/steps.md: every registered step with its meaning and an example."""
    lines = [
        "# Step vocabulary",
        "",
        "Generated from the registered steps by `.venv/bin/python -m steps`; a test keeps it in",
        "sync. A Given step that fails makes the drill `inconclusive`; a When step whose fault",
        "does not take makes it `not_exercised`; a Then step that is not met makes it `fail`.",
        "",
    ]
    for keyword in ("Given", "When", "Then"):
        lines += [f"## {keyword}", ""]
        for step in sorted((s for s in STEPS if s.keyword == keyword), key=lambda s: s.pattern):
            lines += [
                f"### {keyword} {step.pattern}",
                "",
                step.doc,
                "",
                "```gherkin",
                step.example,
                "```",
                "",
            ]
    return "\n".join(lines)
