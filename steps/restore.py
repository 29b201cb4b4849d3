"""Steps for destructive changes and point-in-time restore from the base backup and WAL archive."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.lab.topology import check_region, other_region
from steps.registry import given, then, when


@given(
    parsers.parse("a base backup of {region} is taken"),
    example="Given a base backup of us-east-1 is taken",
)
def base_backup(drill: Drill, region: str) -> None:
    """pg_basebackup of the region's cluster into a scratch folder (removed after the drill)."""
    drill.take_base_backup(check_region(region))


@when(
    parsers.parse("a bulk delete removes {percent:d} % of the documents on {region}"),
    example="When a bulk delete removes 10 % of the documents on us-east-1",
)
def bulk_delete(drill: Drill, percent: int, region: str) -> None:
    """The destructive change, after a snapshot of ids and hashes (kept in the evidence) and
    a reading of the primary's clock (the restore target); the WAL through it is archived."""
    if not 0 < percent <= 100:
        raise ConfigError(f"deleting {percent} % of the documents: use 1 to 100")
    drill.bulk_delete(check_region(region), percent)


@when(
    parsers.parse("replication copies the delete to {region}"),
    example="When replication copies the delete to us-west-2",
)
def delete_replicates(drill: Drill, region: str) -> None:
    """Wait until the standby has replayed everything, then count what it holds."""
    region = check_region(region)
    drill.observe_replicated_delete(other_region(region), region)


@when(
    "a cluster is restored from the base backup and the WAL archive to just before the delete",
    example="When a cluster is restored from the base backup and the WAL archive to just "
    "before the delete",
)
def restore(drill: Drill) -> None:
    """A scratch cluster: the base backup, the archive replayed to the target time
    (exclusive), promoted; timed, and compared with the snapshot."""
    drill.restore_before_delete()


@when(
    parsers.parse("the deleted documents are copied back to {region}"),
    example="When the deleted documents are copied back to us-east-1",
)
def copy_back(drill: Drill, region: str) -> None:
    """The repair: the deleted rows copied from the restored cluster into the primary, which
    is then compared with the snapshot."""
    drill.copy_back(check_region(region))


@then(
    "the delete had reached the standby",
    example="Then the delete had reached the standby",
)
def delete_replicated(drill: Drill) -> None:
    """Replication is faithful: the standby holds exactly what the primary kept."""
    drill.check_delete_replicated()


@then(
    "the restored cluster held every document of the snapshot",
    example="Then the restored cluster held every document of the snapshot",
)
def restore_matches(drill: Drill) -> None:
    """The restore recovered every deleted document, and matches the snapshot id for id
    and hash for hash."""
    drill.check_restore_matches_snapshot()
