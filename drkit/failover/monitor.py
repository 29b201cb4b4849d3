"""ReplicationMonitor: replication lag, connection state and consistency, measured.

Lag is measured by WAL position and by commit times, never by
`now() - pg_last_xact_replay_timestamp()` alone (that grows while an idle primary loses
nothing). Each check writes a heartbeat row on the primary; the lag in seconds is the age, on
the primary's clock, of the oldest heartbeat the DR database has not replayed, and 0 when the
DR has replayed everything the primary had written when the check began.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from drkit.clients.postgres import PgEndpoint, lsn_to_int
from drkit.config import LAB_PROFILE, RPO_OBJECTIVE_SECONDS, TimingProfile
from drkit.errors import ConfigError, TargetUnreachable

STATES = ("streaming", "catching_up", "paused", "disconnected", "unknown")
CATCHING_UP_BYTES = 1 << 20  # a standby more than 1 MiB behind is catching up, not streaming

HEARTBEAT_DDL = """
CREATE TABLE IF NOT EXISTS drkit_heartbeat (
    seq bigserial PRIMARY KEY,
    beat_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


@dataclass(frozen=True)
class Consistency:
    """Ids present in both regions with equal content hash, over the union of ids."""

    ratio: float
    total: int
    missing: int = 0
    extra: int = 0
    stale: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)


ConsistencyCheck = Callable[[], Consistency]

# With one side unreachable, consistency between the two cannot be measured: NaN, never a
# number that reads as a measurement (JSON shows it as null).
NOT_MEASURED = Consistency(
    ratio=math.nan, total=0, detail={"note": "not measured: a side is unreachable"}
)


@dataclass(frozen=True)
class ReplicationStatus:
    lag_seconds: float
    lag_bytes: int
    is_connected: bool
    state: str
    data_consistency_ratio: float
    meets_rpo: bool
    measured_at: datetime
    missing_count: int = 0
    extra_count: int = 0
    stale_count: int = 0
    lag_is_lower_bound: bool = False
    lag_upper_bound_seconds: float | None = None
    rpo_objective_seconds: float = RPO_OBJECTIVE_SECONDS
    primary_reachable: bool = True
    dr_reachable: bool = True
    dr_in_recovery: bool | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["measured_at"] = self.measured_at.isoformat()
        for key in ("data_consistency_ratio", "lag_upper_bound_seconds"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None  # not measured: JSON has no NaN
        data["detail"] = dict(self.detail)
        return data


@dataclass(frozen=True)
class _PrimarySample:
    lsn: int  # the primary's WAL position when the check began, before its heartbeat
    seq: int


@dataclass(frozen=True)
class _DrSample:
    replay_lsn: int | None
    in_recovery: bool
    paused: bool
    receiver: str | None
    seq: int


class ReplicationMonitor:
    """Measures replication from `primary_config` to `dr_config` (dicts used exactly as given)."""

    def __init__(
        self,
        primary_config: Mapping[str, Any],
        dr_config: Mapping[str, Any],
        *,
        profile: TimingProfile = LAB_PROFILE,
        rpo_objective_seconds: float = RPO_OBJECTIVE_SECONDS,
        consistency: ConsistencyCheck | None = None,
        target: Any = None,
    ) -> None:
        self.primary = PgEndpoint.from_config("primary", primary_config)
        self.dr = PgEndpoint.from_config("DR", dr_config)
        self.primary_config = dict(primary_config)
        self.dr_config = dict(dr_config)
        self.profile = profile
        self.rpo_objective_seconds = rpo_objective_seconds
        self.consistency = consistency or self._target_consistency
        self.last_status: ReplicationStatus | None = None
        self.last_complete_status: ReplicationStatus | None = None  # primary up, all measured
        self.last_publish_error: str | None = None
        self._target: Any = target  # None: the active target, found on first use
        self._last_proven_lag: tuple[float, float] | None = None  # (lag, monotonic time)

    def _active_target(self) -> Any:
        """The running target, found once and kept (it caches what it has set up)."""
        if self._target is None:
            from drkit.targets.active import active_target

            self._target = active_target()
        return self._target

    def _target_consistency(self) -> Consistency:
        """Rows and vectors of the active target's two regions (the running lab)."""
        target = self._active_target()
        source = target.region_of_db(self.primary_config)
        replica = target.region_of_db(self.dr_config)
        return target.consistency(source, replica)

    def check_replication_lag(self, *, primary_lost: bool = False) -> ReplicationStatus:
        """Sample both sides now; `primary_lost` skips the primary (declared lost by a caller
        that already knows, e.g. the watcher), so nothing waits on its connect timeout."""
        measured_at = datetime.now(UTC)
        primary = (
            TargetUnreachable(f"{self.primary.describe()} declared lost by the caller")
            if primary_lost
            else self._sample_primary()
        )
        dr = self._sample_dr()
        status = self._status(primary, dr, measured_at)
        self.remember(status)
        self._publish(status)
        return status

    def remember(self, status: ReplicationStatus) -> None:
        """Keep the sample; also as the last complete one when the primary answered and the
        consistency was measured (a primary that dies mid-sample leaves it unmeasured)."""
        self.last_status = status
        if status.primary_reachable and math.isfinite(status.data_consistency_ratio):
            self.last_complete_status = status

    def _publish(self, status: ReplicationStatus) -> None:
        """Metrics to the active target's CloudWatch; a failure is kept, never raised."""
        try:
            target = self._active_target()
            publish = getattr(target, "publish_replication", None)
            if publish is not None:
                publish(
                    status,
                    target.region_of_db(self.primary_config),
                    target.region_of_db(self.dr_config),
                )
            self.last_publish_error = None
        except Exception as exc:  # metrics must never break a measurement
            self.last_publish_error = f"{type(exc).__name__}: {exc}"

    # -- sampling ------------------------------------------------------------------------
    def _timeout(self) -> int:
        return max(1, int(self.profile.connect_timeout_s))

    def _sample_primary(self) -> _PrimarySample | TargetUnreachable:
        try:
            with self.primary.connect(self._timeout()) as conn:
                conn.execute(HEARTBEAT_DDL)
                before = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                seq = conn.execute(
                    "INSERT INTO drkit_heartbeat DEFAULT VALUES RETURNING seq"
                ).fetchone()
                conn.execute(
                    "DELETE FROM drkit_heartbeat WHERE beat_at < now() - interval '2 hours'"
                )
        except TargetUnreachable as exc:
            return exc
        except psycopg.OperationalError as exc:  # the connection died under the query
            return TargetUnreachable(f"{self.primary.describe()}: {exc}".strip())
        except psycopg.Error as exc:
            raise ConfigError(
                f"the monitor cannot write its heartbeat on {self.primary.describe()} as "
                f"{self.primary.user}: {str(exc).strip()}; grant it CREATE on the schema and "
                "INSERT/DELETE on drkit_heartbeat, or use a user that has them"
            ) from exc
        assert seq is not None and before is not None
        return _PrimarySample(lsn=_lsn_int(before[0]), seq=int(seq[0]))

    def _sample_dr(self) -> _DrSample | TargetUnreachable:
        try:
            with self.dr.connect(self._timeout()) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, "
                    "(SELECT status FROM pg_stat_wal_receiver), "
                    "(SELECT coalesce(max(seq), 0) FROM drkit_heartbeat)"
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            return _DrSample(None, True, False, None, 0)  # the heartbeat table has not arrived
        except TargetUnreachable as exc:
            return exc
        except psycopg.Error as exc:  # a standby answers reads; any error here is a lost link
            return TargetUnreachable(f"{self.dr.describe()}: {exc}".strip())
        assert row is not None
        recovery, replay, paused, receiver, seq = row
        return _DrSample(
            _lsn_int(replay) if replay else None, bool(recovery), bool(paused), receiver, int(seq)
        )

    def _lag_bounds(self, dr_seq: int) -> tuple[float, float] | TargetUnreachable:
        """(lower, upper) bounds of the lag on the primary's clock: the age of the oldest
        heartbeat the DR lacks, and of the newest one it has (everything it lacks is younger)."""
        try:
            with self.primary.connect(self._timeout()) as conn:
                row = conn.execute(
                    "SELECT (SELECT extract(epoch FROM clock_timestamp() - beat_at) "
                    "        FROM drkit_heartbeat WHERE seq > %s ORDER BY seq LIMIT 1), "
                    "       (SELECT extract(epoch FROM clock_timestamp() - beat_at) "
                    "        FROM drkit_heartbeat WHERE seq <= %s ORDER BY seq DESC LIMIT 1)",
                    (dr_seq, dr_seq),
                ).fetchone()
        except (TargetUnreachable, psycopg.Error) as exc:
            return TargetUnreachable(f"{self.primary.describe()}: {exc}".strip())
        lower = float(row[0]) if row and row[0] is not None else 0.0
        upper = float(row[1]) if row and row[1] is not None else math.inf
        return lower, max(lower, upper)

    # -- judging -------------------------------------------------------------------------
    def _status(
        self,
        primary: _PrimarySample | TargetUnreachable,
        dr: _DrSample | TargetUnreachable,
        measured_at: datetime,
    ) -> ReplicationStatus:
        both = not isinstance(primary, TargetUnreachable) and not isinstance(dr, TargetUnreachable)
        consistency = self._consistency() if both else NOT_MEASURED
        common = {
            "data_consistency_ratio": consistency.ratio,
            "missing_count": consistency.missing,
            "extra_count": consistency.extra,
            "stale_count": consistency.stale,
            "measured_at": measured_at,
            "rpo_objective_seconds": self.rpo_objective_seconds,
        }
        if isinstance(primary, TargetUnreachable) or isinstance(dr, TargetUnreachable):
            return self._unknown(primary, dr, common)
        lag_bytes = max(0, primary.lsn - dr.replay_lsn) if dr.replay_lsn is not None else 0
        caught_up = dr.replay_lsn is not None and dr.replay_lsn >= primary.lsn
        bounds = (0.0, 0.0) if caught_up else self._lag_bounds(dr.seq)
        if isinstance(bounds, TargetUnreachable):
            return self._unknown(bounds, dr, common)
        lag_s, upper = bounds
        connected = dr.in_recovery and dr.receiver == "streaming"
        state = _state(dr, connected, lag_bytes)
        self._last_proven_lag = (lag_s, time.monotonic())
        return ReplicationStatus(
            lag_seconds=lag_s,
            lag_bytes=lag_bytes,
            is_connected=connected,
            state=state,
            meets_rpo=upper < self.rpo_objective_seconds,  # proven only by the upper bound
            lag_upper_bound_seconds=upper,
            dr_in_recovery=dr.in_recovery,
            detail={
                "primary_lsn": primary.lsn,
                "dr_replay_lsn": dr.replay_lsn,
                "receiver": dr.receiver,
                "consistency": dict(consistency.detail),
            },
            **common,  # type: ignore[arg-type]
        )

    def _unknown(self, primary: object, dr: object, common: dict[str, Any]) -> ReplicationStatus:
        """One side unreachable: the lag proven so far is a lower bound; RPO is not proven."""
        lower = self._last_proven_lag[0] if self._last_proven_lag else 0.0
        errors = [str(x) for x in (primary, dr) if isinstance(x, TargetUnreachable)]
        return ReplicationStatus(
            lag_seconds=lower,
            lag_bytes=0,
            is_connected=False,
            state="unknown",
            meets_rpo=False,
            lag_is_lower_bound=True,
            primary_reachable=not isinstance(primary, TargetUnreachable),
            dr_reachable=not isinstance(dr, TargetUnreachable),
            dr_in_recovery=dr.in_recovery if isinstance(dr, _DrSample) else None,
            detail={"errors": errors},
            **common,
        )

    def _consistency(self) -> Consistency:
        try:
            return self.consistency()
        except Exception as exc:  # an unmeasurable consistency is reported, never assumed
            return Consistency(ratio=math.nan, total=0, detail={"error": str(exc)})


def _state(dr: _DrSample, connected: bool, lag_bytes: int) -> str:
    if not dr.in_recovery:
        return "disconnected"
    if dr.paused:
        return "paused"
    if not connected:
        return "disconnected"
    return "catching_up" if lag_bytes > CATCHING_UP_BYTES else "streaming"


def _lsn_int(text: str) -> int:
    value = lsn_to_int(text)
    assert value is not None
    return value
