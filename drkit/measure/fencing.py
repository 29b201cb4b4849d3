"""Split-brain verdicts: writes sent straight to a fenced region, and acknowledged writes that
exist outside the surviving primary.

A direct writer's processes are named ``direct:<region>-<n>`` (see ``Drill.write_directly``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drkit.measure.history import Op
from drkit.measure.ops import completed_in_order, of_kind, pair_ops, value_field
from drkit.measure.verdict import Verdict

DIRECT_PROCESS = "direct:"


def direct_process(region: str) -> str:
    return f"{DIRECT_PROCESS}{region}"


def check_direct_writes_refused(ops: Sequence[Op], region: str) -> Verdict:
    """Every write sent straight to `region` was refused: none acknowledged, some attempted
    (a check with no attempt would pass hollowly)."""
    prefix = direct_process(region)
    writes = [p for p in of_kind(pair_ops(ops), "write") if p.invoke.process.startswith(prefix)]
    acked = [p for p in writes if p.type == "ok"]
    if not writes:
        return Verdict(
            "fencing", False, f"no write was sent straight to {region}; nothing was tested", 0, 0
        )
    ids = [str(value_field(p.invoke.value, "id")) for p in acked]
    valid = not acked
    reason = (
        f"{len(acked)} of {len(writes)} writes sent straight to {region} were acknowledged"
        + (f" (first: {', '.join(ids[:5])})" if ids else "")
        + ("; fencing held" if valid else "; the old region still takes writes (split brain)")
    )
    return Verdict("fencing", valid, reason, len(acked), 0, "writes", None, {"acked_ids": ids[:50]})


def check_no_writes_outside(
    ops: Sequence[Op], finals: Mapping[str, Mapping[str, str]], primary: str
) -> Verdict:
    """No acknowledged write exists in another region's database without being in
    `primary`'s: `finals` maps each region to its id -> content-hash read."""
    acked = {
        str(value_field(p.invoke.value, "id"))
        for p in completed_in_order(of_kind(pair_ops(ops), "write"))
        if p.type == "ok"
    }
    survivor = finals[primary]
    outside = {
        region: sorted(i for i in acked if i in final and i not in survivor)
        for region, final in finals.items()
        if region != primary
    }
    count = sum(len(ids) for ids in outside.values())
    where = "; ".join(f"{len(ids)} only in {r}" for r, ids in outside.items() if ids)
    reason = f"{count} of {len(acked)} acknowledged writes exist outside {primary}" + (
        f" ({where}; first: {', '.join(next(i for i in outside.values() if i)[:5])})"
        if count
        else ""
    )
    return Verdict(
        "writes_outside_primary",
        count == 0,
        reason,
        count,
        0,
        "writes",
        None,
        {region: ids[:50] for region, ids in outside.items()},
    )
