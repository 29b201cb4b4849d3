"""Binds the drill catalog (drills/*.feature) to pytest."""

from pytest_bdd import scenarios

scenarios(
    "region_outage.feature",
    "rpo_breach.feature",
    "replication_lag.feature",
    "partial_consistency.feature",
    "split_brain.feature",
    "planned_switchover.feature",
    "flapping.feature",
    "replication_link.feature",
    "dns_failover.feature",
    "failback.feature",
    "point_in_time_restore.feature",
    "finra_quarterly.feature",
    "reads_after_failover.feature",
)
