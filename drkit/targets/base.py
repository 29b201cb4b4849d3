"""The Target interface: what the engine and the steps may ask of a lab or of AWS.

Steps and the engine never branch on the target; each target implements these calls with its
own mechanism (pg_promote or the RDS API, a lab DNS record or Route 53, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from drkit.config import TimingProfile
from drkit.failover.monitor import Consistency


@dataclass(frozen=True)
class Health:
    """A dependency's health as read just now; `detail` says what was observed."""

    ok: bool
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Target(Protocol):
    name: str
    profile: TimingProfile
    public_name: str

    def regions(self) -> tuple[str, ...]: ...

    def region_of_db(self, config: Mapping[str, Any]) -> str:
        """Which region a database config points at (by host), or a ConfigError."""
        ...

    def db_config(self, region: str) -> dict[str, Any]: ...

    def service_health(self, region: str) -> Health: ...

    def index_health(self, region: str) -> Health: ...

    def consistency(self, source: str, replica: str) -> Consistency: ...
