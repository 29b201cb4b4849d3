"""Timing profiles and the embedded lab's settings (addresses, ports, where binaries live).

The regulatory objectives (RTO 15 min, RPO 60 min) never change with the target; a timing
profile holds only the operational knobs, fast on the lab and production-like on AWS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from drkit.errors import ConfigError

RTO_OBJECTIVE_SECONDS = 15 * 60.0
RPO_OBJECTIVE_SECONDS = 60 * 60.0


@dataclass(frozen=True)
class TimingProfile:
    """Operational knobs of a target; budgets are derived from them."""

    name: str
    health_interval_s: float
    failure_threshold: int
    dns_ttl_s: int
    wal_receiver_timeout_s: float
    wal_sender_timeout_s: float
    connect_timeout_s: int
    tcp_user_timeout_ms: int
    promotion_budget_s: float
    health_timeout_s: float = 0.25  # a health check's own timeout, under its interval
    lag_alarm_threshold_s: float = 5.0  # the monitor's CloudWatch alarm on replication lag

    def detection_budget_s(self) -> float:
        return self.health_interval_s * self.failure_threshold


LAB_PROFILE = TimingProfile(
    name="lab",
    health_interval_s=0.5,
    failure_threshold=3,
    dns_ttl_s=1,
    wal_receiver_timeout_s=3.0,
    wal_sender_timeout_s=3.0,
    connect_timeout_s=2,
    tcp_user_timeout_ms=3000,
    promotion_budget_s=2.0,
)

PRODUCTION_PROFILE = TimingProfile(
    name="production",
    health_interval_s=30.0,
    failure_threshold=3,
    dns_ttl_s=60,
    wal_receiver_timeout_s=60.0,
    wal_sender_timeout_s=60.0,
    connect_timeout_s=10,
    tcp_user_timeout_ms=30000,
    promotion_budget_s=120.0,
    health_timeout_s=4.0,  # Route 53's health checkers time out after 4 s
    lag_alarm_threshold_s=300.0,
)

DEFAULT_PORT_BASE = 25400


def _port_base_from_env() -> int:
    raw = os.environ.get("DRKIT_LAB_PORT_BASE", str(DEFAULT_PORT_BASE))
    try:
        base = int(raw)
    except ValueError:
        raise ConfigError(
            f"DRKIT_LAB_PORT_BASE={raw!r} is not a number; set it to an integer such as "
            f"{DEFAULT_PORT_BASE} (the lab uses the 100 ports above it)"
        ) from None
    if not 1024 <= base <= 65400:
        raise ConfigError(
            f"DRKIT_LAB_PORT_BASE={base} is out of range; choose 1024..65400 "
            "(the lab uses the 100 ports above it)"
        )
    return base


@dataclass(frozen=True)
class LabPorts:
    """Ports of the lab; every region uses the same port for a service, on its own address."""

    base: int = DEFAULT_PORT_BASE

    @property
    def postgres(self) -> int:
        return self.base + 32

    @property
    def toxiproxy_api(self) -> int:
        return self.base + 74

    @property
    def index(self) -> int:
        return self.base + 81

    @property
    def api(self) -> int:
        return self.base + 80

    @property
    def moto(self) -> int:
        return self.base + 50

    @property
    def dns(self) -> int:
        return self.base + 53

    @classmethod
    def from_env(cls) -> LabPorts:
        return cls(base=_port_base_from_env())


@dataclass(frozen=True)
class LabSettings:
    """Everything `drkit lab` needs to know that is not state."""

    ports: LabPorts = field(default_factory=LabPorts)
    profile: TimingProfile = LAB_PROFILE
    database: str = "ragdb"
    slot_wal_keep_size_mb: int = 64

    @classmethod
    def from_env(cls) -> LabSettings:
        return cls(ports=LabPorts.from_env())
