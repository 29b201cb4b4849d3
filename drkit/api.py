"""`drkit serve`: the DR control API (FastAPI; /docs has the OpenAPI page).

Replication status, readiness, failover (refused without a reason and a confirmation that
names the target region), the quarterly report and the cost analysis, all on the active
target. A failover is the one call that changes anything, so it asks for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from drkit.cost import CostInputs, break_even
from drkit.errors import ConfigError, DrillError
from drkit.evidence.compliance import ComplianceReporter
from drkit.failover.monitor import ReplicationMonitor
from drkit.failover.orchestrator import FailoverOrchestrator
from drkit.failover.result import FailoverResult
from drkit.failover.verifier import DRVerifier

MonitorFactory = Callable[[], ReplicationMonitor]


class FailoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why, for the ledger and report")
    confirm_target: str = Field(description="the region to fail over to, typed out as a check")
    force: bool = Field(default=False, description="go past a failed pre-flight (recorded)")


def lab_monitor() -> ReplicationMonitor:
    """A monitor from the active lab: the writer region to the other one."""
    from drkit.lab.topology import other_region
    from drkit.targets.active import active_target

    target = active_target()
    writer = getattr(target, "writer_region", lambda: None)() or target.regions()[0]
    return ReplicationMonitor(
        target.db_config(writer), target.db_config(other_region(writer)), profile=target.profile
    )


class ControlPlane:
    """The engine objects behind the API, built on first use and kept for the process."""

    def __init__(self, monitor_factory: MonitorFactory) -> None:
        self._factory = monitor_factory
        self._lock = threading.Lock()
        self._verifier: DRVerifier | None = None
        self.last_failover: FailoverResult | None = None

    @property
    def verifier(self) -> DRVerifier:
        with self._lock:
            if self._verifier is None:
                self._verifier = DRVerifier(self._factory())
            return self._verifier


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(monitor_factory: MonitorFactory = lab_monitor) -> FastAPI:
    app = FastAPI(
        title="drkit DR control API",
        version="0.1.0",
        description="Replication status, readiness, failover, reports and cost.",
    )
    plane = ControlPlane(monitor_factory)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Any, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        ]
        return _error(422, "; ".join(problems))

    @app.exception_handler(DrillError)
    async def drill_error(_: Any, exc: DrillError) -> JSONResponse:
        # "no active target" is the service's state, not the caller's mistake
        user_error = isinstance(exc, ConfigError) and "no active target" not in str(exc)
        return _error(422 if user_error else 503, str(exc))

    @app.get("/replication/status")
    def replication_status() -> dict[str, Any]:
        return plane.verifier.monitor.check_replication_lag().to_dict()

    @app.get("/readiness")
    def readiness() -> dict[str, Any]:
        return plane.verifier.run_health_checks()

    @app.post("/failover")
    def failover(request: FailoverRequest) -> JSONResponse:
        verifier = plane.verifier
        expected = verifier.target.region_of_db(verifier.monitor.dr_config)
        if request.confirm_target != expected:
            return _error(
                422,
                f"confirm_target {request.confirm_target!r} does not name the "
                f"failover target; type {expected!r} to confirm",
            )
        result = FailoverOrchestrator(verifier).execute_failover(
            request.reason, force=request.force
        )
        plane.last_failover = result
        return JSONResponse(result.to_dict(), status_code=200 if result.success else 409)

    @app.get("/reports/quarterly")
    def quarterly(
        test_date: Annotated[datetime, Query(description="when the test ran, ISO 8601")],
    ) -> Any:
        if plane.last_failover is None:
            return _error(409, "no failover has run in this process; POST /failover first")
        status = (
            plane.verifier.monitor.last_status or plane.verifier.monitor.check_replication_lag()
        )
        return ComplianceReporter().generate_quarterly_report(
            test_date, plane.last_failover, status
        )

    @app.get("/cost")
    def cost(
        monthly_dr_cost: Annotated[float, Query(gt=0)] = 250_000.0,
        outage_cost_per_hour: Annotated[float, Query(gt=0)] = 30_000.0,
        outage_hours: Annotated[float, Query(gt=0)] = 4.0,
        indirect_multiplier: Annotated[float, Query(gt=0)] = 100.0,
        currency: Annotated[str, Query(min_length=3, max_length=3)] = "INR",
    ) -> dict[str, Any]:
        inputs = CostInputs(
            monthly_dr_cost, outage_cost_per_hour, outage_hours, indirect_multiplier, currency
        )
        return break_even(inputs).to_dict()

    return app
