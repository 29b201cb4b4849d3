"""Recorded drills for the Then steps' self-tests: one violating and one passing history each."""

from __future__ import annotations

from drkit.drill import RecordedDrill
from drkit.measure.builder import HistoryBuilder, payload_hash

EAST, WEST = "us-east-1", "us-west-2"
PERIOD = 0.05


def failover(
    recover_at: float, *, lose_from: float | None = None, cut_at: float | None = None
) -> RecordedDrill:
    """Writes on us-east-1, the disaster at 100 s, writes on us-west-2 from `recover_at` on;
    the surviving database lacks every east write acknowledged after `lose_from`."""
    b = HistoryBuilder()
    east = [f"e{n}" for n in range(0, 2000, 10)]  # one write every 0.5 s for 100 s
    for n, doc in enumerate(east):
        b.write(doc, n * 0.5, region=EAST)
    if cut_at is not None:
        b.fault("replication link cut", cut_at)
    b.fault("us-east-1 cut off", 100.0, disaster=True)
    west = [f"w{n}" for n in range(40)]
    b.writes(west, 100.0 + recover_at, PERIOD, region=WEST)
    kept = [d for n, d in enumerate(east) if lose_from is None or n * 0.5 < lose_from]
    final = {doc: payload_hash(doc) for doc in [*kept, *west]}
    return RecordedDrill(b.ops(), finals={WEST: final})


CASES = {
    "slow recovery": lambda: failover(recover_at=120.0),
    "recovery over budget": lambda: failover(recover_at=10.0),
    "writes lost for 90 s": lambda: failover(recover_at=2.0, lose_from=10.0),
    "healthy failover": lambda: failover(recover_at=2.0),
    "link cut 40 s, writes since lost": lambda: failover(2.0, lose_from=60.0, cut_at=60.0),
    "link cut 40 s, nothing lost": lambda: failover(2.0, cut_at=60.0),
}
