"""Charts for the evidence package: what a drill saw, drawn for an auditor as PNG bytes.

Every chart reads a history's ops (or the verdict files of stored runs) and returns a PNG of
``DPI`` x its ``SIZES`` entry, or None when there is nothing to draw. matplotlib is imported
inside the functions (its import costs ~0.4 s and drkit is imported by every pytest run), and
only its object API is used (no pyplot state), so charts may be drawn from several threads.
Times on the x-axis are seconds from the first fault injection (from the history's start
when there is none); faults are shaded from their injection (invoked) to their heal
(completed): the span in which the fault was, or may have been, in effect.
"""

from __future__ import annotations

import io
import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from drkit.measure.history import Op
from drkit.measure.observations import REPLICATION, observations
from drkit.measure.ops import CONVERGENCE, pair_ops, value_field
from drkit.measure.rto import Phase, RtoMeasurement, measure_rto
from drkit.measure.verdict import UNKNOWN, Validity, Verdict, merge_validity

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI: Final = 100
SIZES: Final[Mapping[str, tuple[float, float]]] = {
    "timeline": (10.0, 5.0),
    "lag": (10.0, 5.0),
    "waterfall": (10.0, 4.5),
    "trend": (10.0, 5.5),
}
"""Inches per chart kind; at ``DPI`` a chart is 1000 px wide (Allure shows ~900 px)."""

REGION_COLORS: Final = ("#1f77b4", "#2ca02c", "#17becf", "#8c564b")
FAIL, INFO = "#d62728", "#ff7f0e"
FAULT_SHADE, DISASTER_SHADE = "#e8b020", "#d62728"
PHASE_COLORS: Final[Mapping[str, str]] = {
    "detection": "#9467bd",
    "decision": "#8c564b",
    "fencing": "#e377c2",
    "promotion": "#555555",
    "dns_switch": "#bcbd22",
    CONVERGENCE: "#17becf",
}
VERDICT_COLORS: Final[Mapping[str, str]] = {"pass": "#2ca02c", "fail": FAIL}
NO_VERDICTS: Final = "no verdicts"
_OUTCOMES: Final[Mapping[Validity, str]] = {True: "pass", False: "fail", UNKNOWN: "unknown"}
ALARM_COLORS: Final[Mapping[str, str]] = {"OK": "#2ca02c", "ALARM": FAIL}
_CHAR_PX = 6.2  # width of one character at the 8-point labels, for laying out labels
_LEVEL_PT = 13  # one row of staggered labels above an axes, in points
_BOTTOM = 0.15  # the timeline axes' bottom (figure fraction): room for the axis and legend
_MARK_DEDUP_S = 0.25  # the same phase marked twice this close (two sources) is drawn once


def _figure(kind: str) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=SIZES[kind], dpi=DPI)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _title(fig: Figure, title: str, subtitle: str = "") -> None:
    fig.text(0.01, 0.985, textwrap.shorten(title, 120), fontsize=12, weight="bold", va="top")
    if subtitle:
        fig.text(0.01, 0.935, subtitle, fontsize=9, color="#444444", va="top")


def _px(kind: str) -> float:
    return SIZES[kind][0] * DPI


def _top(levels: int, kind: str) -> float:
    """The axes' top (figure fraction) under the title and ``levels`` rows of labels."""
    height_px = SIZES[kind][1] * DPI
    return 0.90 - (levels * _LEVEL_PT + 6) * DPI / 72 / height_px


def _short(text: str, width: int = 70) -> str:
    return textwrap.shorten(text, width, placeholder="...")


def _human(phase: str) -> str:
    return {"dns_switch": "DNS switch", CONVERGENCE: "client convergence"}.get(phase, phase)


# -- facts read off the history -------------------------------------------------------------


@dataclass(frozen=True)
class FaultWindow:
    """A fault from its injection (invoked) to its heal (completed); ``end`` None: never
    healed in this history."""

    fault: str
    start: float
    end: float | None
    disaster: bool


def fault_windows(ops: Sequence[Op]) -> list[FaultWindow]:
    """Each fault's window, an injection paired with the heal of its ledger record (or, in
    hand-built histories without records, of the same fault text)."""
    opened: dict[object, tuple[str, float, bool]] = {}
    windows: list[FaultWindow] = []
    for op in ops:
        if op.kind != "fault":
            continue
        text, f = str(value_field(op.value, "fault")), value_field(op.value, "f")
        record = value_field(op.value, "record")
        key = record if record is not None else text
        if f == "inject" and op.is_invoke and key not in opened:
            opened[key] = (text, op.mono, value_field(op.value, "disaster") is True)
        elif f == "heal" and op.type == "ok" and key in opened:
            text, start, disaster = opened.pop(key)
            windows.append(FaultWindow(text, start, op.mono, disaster))
    windows.extend(FaultWindow(text, start, None, d) for text, start, d in opened.values())
    return sorted(windows, key=lambda w: w.start)


def recovery_marks(ops: Sequence[Op]) -> list[tuple[str, float]]:
    """(phase, monotonic time) of each recovery mark, a phase marked again by a second
    source within a quarter second drawn once."""
    marks: list[tuple[str, float]] = []
    for op in ops:
        phase = value_field(op.value, "phase") if op.kind == "recovery" else None
        if not isinstance(phase, str) or op.type != "ok":
            continue
        if not any(p == phase and abs(op.mono - t) < _MARK_DEDUP_S for p, t in marks):
            marks.append((phase, op.mono))
    return sorted(marks, key=lambda m: m[1])


def _origin(ops: Sequence[Op]) -> tuple[float, str]:
    """Time zero of the x-axis, and the axis label that says what it is."""
    injections = [
        op
        for op in ops
        if op.kind == "fault" and op.is_invoke and value_field(op.value, "f") == "inject"
    ]
    if injections:
        first = min(injections, key=lambda op: op.mono)
        what = _short(str(value_field(first.value, "fault")), 60)
        return first.mono, f"seconds from the first fault injection ({what})"
    start = min((op.mono for op in ops), default=0.0)
    return start, "seconds from the start of the history"


# -- drawing helpers ----------------------------------------------------------------------


def _x_range(ops: Sequence[Op], origin: float) -> tuple[float, float]:
    """The x-axis limits: the whole history (and time zero), padded by 2% (0.1 s at least)."""
    first, last = min(op.mono for op in ops), max(op.mono for op in ops)
    pad = max(0.02 * (last - first), 0.1)
    return min(0.0, first - origin) - pad, last - origin + pad


def _shade_faults(ax: Axes, windows: Sequence[FaultWindow], origin: float, end: float) -> None:
    for w in windows:
        stop = (w.end if w.end is not None else end) - origin
        color, alpha = (DISASTER_SHADE, 0.10) if w.disaster else (FAULT_SHADE, 0.16)
        ax.axvspan(w.start - origin, stop, color=color, alpha=alpha, lw=0, zorder=0)


def _levels(starts_px: Sequence[float], widths_px: Sequence[float], gap: float = 6.0) -> list[int]:
    """The lowest free level for each label, left to right, so that no two labels overlap."""
    ends: list[float] = []
    levels = []
    for start, width in zip(starts_px, widths_px, strict=True):
        level = next((i for i, e in enumerate(ends) if e + gap <= start), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = start + width
        levels.append(level)
    return levels


@dataclass(frozen=True)
class _Frame:
    """Where the axes sit in the figure (fractions), and the data range of their x-axis."""

    left: float
    right: float
    xmin: float
    xmax: float
    width_px: float

    def px(self, x: float) -> float:
        span = (self.xmax - self.xmin) or 1.0
        return (self.left + (x - self.xmin) / span * (self.right - self.left)) * self.width_px


def _label_marks(ax: Axes, frame: _Frame, marks: Sequence[tuple[str, float, str]]) -> int:
    """Labels (text, x, color) above the axes, staggered into levels with a leader line down
    to their x; returns the levels used. Higher levels are drawn first, so a lower label's
    white box hides the leaders that pass behind it."""
    widths = [len(text) * _CHAR_PX + 4 for text, _x, _c in marks]
    levels = _levels([frame.px(x) for _t, x, _c in marks], widths)
    for level, (text, x, color) in sorted(zip(levels, marks, strict=True), key=lambda m: -m[0]):
        ax.annotate(
            text,
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 4 + _LEVEL_PT * level),
            textcoords="offset points",
            fontsize=8,
            color=color,
            ha="left",
            va="bottom",
            annotation_clip=False,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
            arrowprops={
                "arrowstyle": "-",
                "color": color,
                "lw": 0.7,
                "shrinkA": 0,
                "shrinkB": 0,
                "relpos": (0.0, 0.0),
            },
        )
    return max(levels, default=-1) + 1


def _region_colors(ops: Sequence[Op]) -> dict[str, str]:
    regions = sorted({op.region for op in ops if op.region is not None})
    return {r: REGION_COLORS[i % len(REGION_COLORS)] for i, r in enumerate(regions)}


# -- 1. the timeline ----------------------------------------------------------------------

_KIND_ORDER = {"write": 0, "read": 1}
_OUTCOME_ORDER = {"ok": 0, "info": 1, "fail": 2}
_STANDARD_CLIENT = {"write": "writer", "read": "probe"}
_BUCKETS = 2000  # per chart width: finer than a pixel, so binning never hides an outcome


@dataclass
class _Row:
    label: str
    color: str
    marker: str
    times: list[float] = field(default_factory=list)


def _family(process: str) -> str:
    """`writer-0` -> `writer`, `client3-0` -> `client`, `direct:us-east-1-0` ->
    `direct:us-east-1`: the client a process belongs to."""
    head = re.sub(r"-\d+$", "", process)
    return re.sub(r"(?<=[A-Za-z])\d+$", "", head)


def _op_rows(ops: Sequence[Op], colors: Mapping[str, str]) -> list[_Row]:
    """One row per kind x client x outcome (x answering region, for ok), writes first."""
    keyed: dict[tuple[int, int, int, str], _Row] = {}
    families: dict[str, int] = {}
    for pair in pair_ops(ops):
        kind, done = pair.invoke.kind, pair.completion
        if kind not in _KIND_ORDER:
            continue
        family = _family(pair.invoke.process)
        order = families.setdefault(family, len(families))
        region = (done.region or "?") if done is not None and pair.type == "ok" else ""
        key = (_KIND_ORDER[kind], order, _OUTCOME_ORDER[pair.type], region)
        if key not in keyed:
            keyed[key] = _new_row(kind, family, pair.type, region, colors)
        keyed[key].times.append(done.mono if done is not None else pair.invoke.mono)
    rows = [keyed[k] for k in sorted(keyed)]
    for row in rows:
        row.label += f" ({len(row.times):,})"
    return rows


def _new_row(kind: str, family: str, outcome: str, region: str, colors: Mapping[str, str]) -> _Row:
    who = "" if family in (kind, _STANDARD_CLIENT[kind]) else f" [{family}]"
    if outcome == "ok":
        return _Row(f"{kind}{who} ok, {region}", colors.get(region, "#333333"), "|")
    if outcome == "info":
        return _Row(f"{kind}{who} unknown (info)", INFO, "o")
    return _Row(f"{kind}{who} fail", FAIL, "x")


def _fault_rows(windows: Sequence[FaultWindow]) -> dict[str, list[FaultWindow]]:
    rows: dict[str, list[FaultWindow]] = {}
    for w in windows:
        rows.setdefault(w.fault, []).append(w)
    return rows


def timeline_chart(ops: Sequence[Op], *, title: str) -> bytes:
    """Writes and reads over time, one row per outcome (ok rows per answering region), the
    faults as bars and shaded windows, the recovery phases as labelled vertical lines, and
    the moment of recovery (the RTO's end) when there was one. Outcomes are binned into
    ~2000 buckets across the chart, so a 10k-op history stays legible and fast."""
    fig = _figure("timeline")
    origin, xlabel = _origin(ops)
    if not ops:
        return _empty(fig, title, "the history holds no operations")
    end = max(op.mono for op in ops)
    windows = fault_windows(ops)
    faults = _fault_rows(windows)
    rows = _op_rows(ops, _region_colors(ops))
    labels = [_fault_row_label(ws) for ws in faults.values()] + [r.label for r in rows]
    left = min(0.34, (max((len(s) for s in labels), default=10) * _CHAR_PX + 24) / _px("timeline"))
    xmin, xmax = _x_range(ops, origin)
    frame = _Frame(left, 0.985, xmin, xmax, _px("timeline"))
    ax = fig.add_axes((left, _BOTTOM, frame.right - left, 0.5))
    _shade_faults(ax, windows, origin, end)
    _draw_fault_rows(ax, faults, origin, end)
    bucket = max((xmax - xmin) / _BUCKETS, 1e-3)
    _draw_op_rows(ax, rows, len(faults), origin, bucket)
    rto = measure_rto(ops)
    marks = recovery_marks(ops)
    levels = _draw_marks(ax, frame, marks, rto, origin)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(max(len(labels), 1) - 0.5, -0.5)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if not labels:
        ax.text(0.5, 0.5, "no reads, writes or faults in this history", ha="center",
                va="center", transform=ax.transAxes, fontsize=10, color="#666666")  # fmt: skip
    ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_position((left, _BOTTOM, frame.right - left, _top(levels, "timeline") - _BOTTOM))
    _title(fig, title, _timeline_subtitle(ops, rto, bucket))
    _outcome_legend(fig, rows, windows, bool(marks))
    return _png(fig)


def _fault_row_label(windows: Sequence[FaultWindow]) -> str:
    kind = "disaster" if any(w.disaster for w in windows) else "fault"
    return f"{kind} ({len(windows)}x)" if len(windows) > 1 else kind


def _draw_fault_rows(
    ax: Axes, faults: Mapping[str, Sequence[FaultWindow]], origin: float, end: float
) -> None:
    for y, (text, windows) in enumerate(faults.items()):
        color = DISASTER_SHADE if any(w.disaster for w in windows) else FAULT_SHADE
        spans = [
            (w.start - origin, (w.end if w.end is not None else end) - w.start) for w in windows
        ]
        ax.broken_barh(spans, (y - 0.32, 0.64), color=color, alpha=0.75, lw=0)
        healed = all(w.end is not None for w in windows)
        note = "" if healed else "  (not healed)"
        ax.text(
            spans[0][0],
            y,
            " " + _short(text, 90) + note,
            fontsize=8,
            va="center",
            ha="left",
            clip_on=True,
            color="#222222",
        )


def _draw_op_rows(
    ax: Axes, rows: Sequence[_Row], offset: int, origin: float, bucket: float
) -> None:
    import numpy as np

    for y, row in enumerate(rows, start=offset):
        t = np.asarray(row.times) - origin
        x = (np.unique(np.floor(t / bucket)) + 0.5) * bucket
        style = {"|": (11, 1.1), "o": (4, 1.0), "x": (4.5, 1.0)}[row.marker]
        ax.plot(
            x,
            np.full(len(x), y),
            linestyle="none",
            marker=row.marker,
            color=row.color,
            markersize=style[0],
            markeredgewidth=style[1],
            markerfacecolor="none",
        )


def _draw_marks(
    ax: Axes, frame: _Frame, marks: Sequence[tuple[str, float]], rto: RtoMeasurement, origin: float
) -> int:
    labelled: list[tuple[str, float, str]] = []
    for phase, t in marks:
        color = PHASE_COLORS.get(phase, "#555555")
        ax.axvline(t - origin, color=color, lw=1.0, ls="--", zorder=3)
        labelled.append((_human(phase), t - origin, color))
    if rto.recovered_mono is not None and rto.rto is not None:
        color = PHASE_COLORS[CONVERGENCE]
        x = rto.recovered_mono - origin
        ax.axvline(x, color=color, lw=1.8, zorder=3)
        labelled.append((f"recovered: RTO {rto.rto:.2f} s", x, color))
    return _label_marks(ax, frame, sorted(labelled, key=lambda m: m[1]))


def _timeline_subtitle(ops: Sequence[Op], rto: RtoMeasurement, bucket: float) -> str:
    span = max(op.mono for op in ops) - min(op.mono for op in ops)
    parts = [f"{len(ops):,} ops over {span:.1f} s"]
    if rto.rto is not None:
        bar = f" ± {rto.error_bar:.3f} s" if rto.error_bar is not None else ""
        parts.append(f"RTO {rto.rto:.3f} s{bar}, {rto.old_primary} -> {rto.new_writer}")
    elif rto.disaster is not None:
        parts.append("no lasting recovery seen after the disaster")
    parts.append(f"one marker per row and {bucket * 1000:.0f} ms bin")
    return "  |  ".join(parts)


def _outcome_legend(
    fig: Figure, rows: Sequence[_Row], windows: Sequence[FaultWindow], marks: bool
) -> None:
    """A legend of what is drawn: outcome markers, fault shades, recovery lines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = {row.marker for row in rows}
    ok = Line2D([], [], ls="none", marker="|", color=REGION_COLORS[0], ms=9)
    ok.set_label("ok (color: answering region)")
    candidates = [
        ("|" in drawn, ok),
        ("o" in drawn, Line2D([], [], ls="none", marker="o", color=INFO, mfc="none", ms=5)),
        ("x" in drawn, Line2D([], [], ls="none", marker="x", color=FAIL, ms=5)),
        (any(not w.disaster for w in windows), Patch(color=FAULT_SHADE, alpha=0.4)),
        (any(w.disaster for w in windows), Patch(color=DISASTER_SHADE, alpha=0.3)),
        (marks, Line2D([], [], color="#555555", ls="--", lw=1)),
    ]
    labels = [ok.get_label(), "unknown", "fail", "fault in effect", "disaster in effect",
              "recovery phase ends"]  # fmt: skip
    shown = [(h, label) for (on, h), label in zip(candidates, labels, strict=True) if on]
    if shown:
        handles, texts = zip(*shown, strict=True)
        fig.legend(handles, texts, loc="lower center", ncol=len(shown), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 0.0))  # fmt: skip


def _empty(fig: Figure, title: str, why: str) -> bytes:
    _title(fig, title)
    fig.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, color="#666666")
    return _png(fig)


# -- 2. replication lag -------------------------------------------------------------------


def lag_chart(ops: Sequence[Op], *, title: str, threshold_s: float | None = None) -> bytes | None:
    """Replication lag samples (``health`` ops, check "replication") over time: the lag in
    seconds between its proven bounds (``lag_s`` is the lower bound, ``lag_upper_s`` the
    upper one) colored by the lag alarm's state, the alarm threshold, and below it the WAL
    not yet replayed (``lag_bytes``); None when the history has no lag sample."""
    samples = observations(ops, REPLICATION)
    if not samples:
        return None
    fig = _figure("lag")
    origin, xlabel = _origin(ops)
    end = max(op.mono for op in ops)
    with_bytes = any(not math.isnan(_number(s, "lag_bytes")) for s in samples)
    axes = (
        list(fig.subplots(2, 1, sharex=True, height_ratios=[2, 1]))
        if with_bytes
        else [fig.add_subplot()]
    )
    windows = fault_windows(ops)
    for ax in axes:
        _shade_faults(ax, windows, origin, end)
        ax.grid(color="#e5e5e5", lw=0.6)
        ax.tick_params(labelsize=8)
    _lag_seconds(axes[0], samples, origin, threshold_s)
    if with_bytes:
        _lag_bytes(axes[1], samples, origin)
    axes[-1].set_xlabel(xlabel, fontsize=9)
    xmin, xmax = _x_range(ops, origin)
    axes[0].set_xlim(xmin, xmax)
    frame = _Frame(0.08, 0.985, xmin, xmax, _px("lag"))
    levels = _label_faults(axes[0], frame, windows, origin)
    fig.subplots_adjust(
        left=frame.left, right=frame.right, top=_top(levels, "lag"), bottom=0.18, hspace=0.1
    )
    _lag_legend(fig, axes, windows)
    _title(fig, title, _lag_subtitle(samples, threshold_s))
    return _png(fig)


def _number(op: Op, key: str) -> float:
    """A numeric field of an op's value, NaN when absent (matplotlib leaves a gap)."""
    value = value_field(op.value, key)
    return float(value) if isinstance(value, int | float) else float("nan")


def _lag_seconds(ax: Axes, samples: Sequence[Op], origin: float, threshold_s: float | None) -> None:
    t = [s.mono - origin for s in samples]
    lower = [_number(s, "lag_s") for s in samples]
    upper = [_number(s, "lag_upper_s") for s in samples]
    ax.fill_between(
        t,
        lower,
        upper,
        color="#1f77b4",
        alpha=0.15,
        lw=0,
        label="lag lies between its proven bounds",
    )
    ax.plot(t, lower, color="#1f77b4", lw=1.3, label="lag, lower bound")
    states = [str(value_field(s.value, "alarm")) for s in samples]
    for state in dict.fromkeys(states):
        at = [i for i, s in enumerate(states) if s == state]
        ax.scatter(
            [t[i] for i in at],
            [lower[i] for i in at],
            s=24 if len(samples) <= 100 else 8,
            zorder=4,
            color=ALARM_COLORS.get(state, "#999999"),
            label=f"alarm {state}",
        )
    if threshold_s is not None:
        ax.axhline(
            threshold_s, color=FAIL, ls="--", lw=1.1, label=f"alarm threshold {threshold_s:g} s"
        )
    ax.set_ylabel("replication lag (s)", fontsize=9)
    ax.set_ylim(0, _headroom([*lower, *upper, threshold_s or 0.0]))


def _headroom(values: Sequence[float]) -> float:
    """The top of a y-axis from 0: 10% over the largest finite value, 1 when all are 0."""
    peak = max((v for v in values if math.isfinite(v)), default=0.0)
    return peak * 1.1 if peak > 0 else 1.0


def _lag_bytes(ax: Axes, samples: Sequence[Op], origin: float) -> None:
    values = [_number(s, "lag_bytes") for s in samples]
    peak = max((v for v in values if not math.isnan(v)), default=0.0)
    scale, unit = next(
        ((f, u) for f, u in ((2**20, "MiB"), (2**10, "KiB")) if peak >= f), (1, "bytes")
    )
    ax.plot(
        [s.mono - origin for s in samples],
        [v / scale for v in values],
        color="#555555",
        marker=".",
        lw=1.1,
        label="WAL not yet replayed",
    )
    ax.set_ylabel(f"WAL behind ({unit})", fontsize=9)
    ax.set_ylim(0, _headroom([v / scale for v in values]))


def _label_faults(ax: Axes, frame: _Frame, windows: Sequence[FaultWindow], origin: float) -> int:
    marks = [
        (
            ("disaster: " if w.disaster else "fault: ") + _short(w.fault, 80),
            w.start - origin,
            DISASTER_SHADE if w.disaster else "#9a7000",
        )
        for w in windows
    ]
    return _label_marks(ax, frame, marks)


def _lag_legend(fig: Figure, axes: Sequence[Axes], windows: Sequence[FaultWindow]) -> None:
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for ax in axes:
        handles.extend(ax.get_legend_handles_labels()[0])
    if any(not w.disaster for w in windows):
        handles.append(Patch(color=FAULT_SHADE, alpha=0.4, label="fault in effect"))
    if any(w.disaster for w in windows):
        handles.append(Patch(color=DISASTER_SHADE, alpha=0.3, label="disaster in effect"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 5),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )


def _lag_subtitle(samples: Sequence[Op], threshold_s: float | None) -> str:
    lags = [v for v in (_number(s, "lag_s") for s in samples) if not math.isnan(v)]
    parts = [f"{len(samples)} samples", f"peak {max(lags, default=0.0):.2f} s (lower bound)"]
    if threshold_s is not None:
        above = sum(1 for lag in lags if lag > threshold_s)
        parts.append(f"{above} above the {threshold_s:g} s threshold")
    alarms = sum(1 for s in samples if value_field(s.value, "alarm") == "ALARM")
    parts.append(f"the alarm in ALARM in {alarms} samples")
    return "  |  ".join(parts)


# -- 3. the RTO waterfall -----------------------------------------------------------------


def rto_waterfall(
    source: Sequence[Op] | Sequence[Phase] | Sequence[Mapping[str, Any]] | Verdict,
    *,
    title: str,
    objective_s: float | None = None,
    budget_s: float | None = None,
    error_bar_s: float | None = None,
) -> bytes | None:
    """The RTO split into its phases, each a bar from where the previous one ended, from the
    disaster to the first lasting write, with the total's error bar, the budget and the
    objective (noted, not drawn, when far off the scale). ``source`` is a history's ops, the
    phases (``Phase`` or their JSON dicts), or the ``rto`` Verdict; None when there was no
    failover to draw."""
    phases, bar, fault = _phases_of(source)
    if not phases:
        return None
    bar = error_bar_s if error_bar_s is not None else bar
    if isinstance(source, Verdict) and objective_s is None:
        objective_s = float(source.objective) if source.objective is not None else None
    start = phases[0].start
    rto = phases[-1].end - start
    fig = _figure("waterfall")
    ax = fig.add_axes((0.17, 0.14, 0.8, 0.7))
    names = [_human(p.name) for p in phases] + ["RTO"]
    for y, p in enumerate(phases):
        color = PHASE_COLORS.get(p.name, "#777777")
        visible = max(p.duration, rto / 400)  # a 3 ms fencing still shows as a sliver
        ax.barh(y, visible, left=p.start - start, color=color, height=0.6)
        share = f" ({p.duration / rto:.0%})" if rto > 0 else ""
        ax.text(p.end - start, y, f"  {p.duration:.3f} s{share}", va="center", fontsize=8)
    _total_bar(ax, len(phases), rto, bar)
    xmax = _limits(ax, rto + (bar or 0.0), budget_s, objective_s)
    ax.set_xlim(0, xmax)
    ax.set_ylim(len(names) - 0.4, -0.6)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_xlabel(f"seconds from the disaster ({_short(fault, 70)})", fontsize=9)
    ax.grid(axis="x", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="x", labelsize=8)
    subtitle = f"RTO {rto:.3f} s" + (f" ± {bar:.3f} s (the writer's period)" if bar else "")
    _title(fig, title, subtitle + "; each phase ends at its recovery mark")
    return _png(fig)


def _phases_of(
    source: Sequence[Op] | Sequence[Phase] | Sequence[Mapping[str, Any]] | Verdict,
) -> tuple[list[Phase], float | None, str]:
    """(phases, error bar, disaster fault) from ops, phases, or an ``rto`` verdict."""
    if isinstance(source, Verdict):
        disaster = source.details.get("disaster") or {}
        phases = [_as_phase(p) for p in source.details.get("phases") or ()]
        return phases, source.error_bar, str(disaster.get("fault", "the disaster"))
    items = list(source)
    if items and isinstance(items[0], Op):
        ops = [op for op in items if isinstance(op, Op)]
        m = measure_rto(ops)
        fault = m.disaster.fault if m.disaster is not None else "the disaster"
        return list(m.phases) if m.rto is not None else [], m.error_bar, fault
    phases = [p if isinstance(p, Phase) else _as_phase(p) for p in items]  # type: ignore[arg-type]
    return phases, None, "the disaster"


def _as_phase(data: Mapping[str, Any]) -> Phase:
    return Phase(str(data["name"]), float(data["start"]), float(data["end"]))


def _total_bar(ax: Axes, y: int, rto: float, bar: float | None) -> None:
    ax.barh(
        y,
        rto,
        color="#333333",
        height=0.6,
        xerr=bar,
        capsize=5,
        error_kw={"ecolor": FAIL, "lw": 1.4},
    )
    text = f"  {rto:.3f} s" + (f" ± {bar:.3f} s" if bar else "")
    ax.text(rto + (bar or 0.0), y, text, va="center", fontsize=9, weight="bold")


def _limits(ax: Axes, rto: float, budget_s: float | None, objective_s: float | None) -> float:
    """Draw the budget and objective lines that fit within 3x the RTO; note the others."""
    reach = max(rto, budget_s or 0.0) * 1.22 if (budget_s or 0) <= 3 * rto else rto * 1.35
    notes = []
    for name, value, style in (("budget", budget_s, ":"), ("objective", objective_s, "--")):
        if value is None:
            continue
        if value <= reach:
            ax.axvline(value, color=FAIL, ls=style, lw=1.3)
            ax.text(value, -0.55, f" {name} {value:g} s", color=FAIL, fontsize=8, va="bottom")
        else:
            notes.append(f"{name} {value:g} s: off the scale (RTO is {rto / value:.1%} of it)")
    _off_scale_note(ax, "\n".join(notes), 0.99, 0.03, "bottom")
    return reach


def _off_scale_note(ax: Axes, text: str, x: float, y: float, va: str) -> None:
    """Objectives too far off the scale to draw, written in a corner instead."""
    if text:
        ax.text(
            x,
            y,
            text,
            transform=ax.transAxes,
            ha="right",
            va=va,
            fontsize=8,
            color=FAIL,
            bbox={"fc": "white", "ec": "#dddddd"},
        )


# -- 4. the trend across runs -------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    """One run's measured RTO and RPO for a drill (None: not measured in that run)."""

    run_id: str
    started_at: datetime | str
    rto_s: float | None
    rpo_s: float | None
    rto_error_s: float | None
    verdict: str
    rto_objective_s: float | None = None
    rto_budget_s: float | None = None
    rpo_objective_s: float | None = None


def load_trend(runs_dir: Path, drill_name: str, last: int = 10) -> list[TrendPoint]:
    """The drill's last ``last`` runs under ``runs_dir`` (run folders sort by their UTC
    timestamp), from each run's ``verdicts/*.json``: the ``rto``, ``budget`` and ``rpo``
    verdicts, and the merged validity of all as ``verdict``. ``drill_name`` is the scenario's
    recorded name (the verdict file's ``name``) or its file stem. A run that kept the drill's
    history but no verdict file is a point without figures, its verdict "no verdicts"."""
    points = []
    for run in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        point = _point_from_verdicts(run, drill_name) or _point_from_history(run, drill_name)
        if point is not None:
            points.append(point)
    return points[-last:] if last > 0 else []


def _point_from_verdicts(run: Path, drill_name: str) -> TrendPoint | None:
    for path in sorted((run / "verdicts").glob("*.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and drill_name in (summary.get("name"), path.stem):
            return _point(run.name, summary.get("verdicts") or [])
    return None


def _point(run_id: str, verdicts: Sequence[Mapping[str, Any]]) -> TrendPoint:
    by = {v.get("checker"): v for v in verdicts if isinstance(v, Mapping)}
    rto, rpo, budget = by.get("rto") or {}, by.get("rpo") or {}, by.get("budget") or {}
    validity = merge_validity(v["valid"] for v in by.values() if v.get("valid") in _OUTCOMES)
    return TrendPoint(
        run_id,
        started_at(run_id),
        _num(rto.get("value")),
        _num(rpo.get("value")),
        _num(rto.get("error_bar")),
        _OUTCOMES[validity],
        _num(rto.get("objective")),
        _num(budget.get("objective")),
        _num(rpo.get("objective")),
    )


def _point_from_history(run: Path, drill_name: str) -> TrendPoint | None:
    for path in sorted((run / "histories").glob("*.jsonl")):
        try:
            with path.open() as lines:
                header = json.loads(lines.readline() or "{}")
        except (OSError, ValueError):
            continue
        if drill_name in (header.get("name"), path.stem):
            return TrendPoint(run.name, started_at(run.name), None, None, None, NO_VERDICTS)
    return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def started_at(run_id: str) -> datetime | str:
    """The UTC start a run id begins with (`20261126T092532Z-aafa`), or the id itself."""
    try:
        return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return run_id


def trend_chart(
    points: Sequence[TrendPoint],
    *,
    title: str,
    rto_objective_s: float | None = None,
    rto_budget_s: float | None = None,
    rpo_objective_s: float | None = None,
) -> bytes:
    """RTO (with its error bar) and RPO per run, oldest left, each marker colored by the run's
    verdict; a run without a figure is an x on the axis marked "not measured" (or "no
    verdict file"). Objective and budget
    lines come from the arguments, else from the newest point that has them; an objective far
    above the measured figures is noted rather than drawn."""
    fig = _figure("trend")
    if not points:
        return _empty(fig, title, "no stored run of this drill")
    rto_ax, rpo_ax = fig.subplots(2, 1, sharex=True)
    fig.subplots_adjust(left=0.08, right=0.985, top=0.87, bottom=0.17, hspace=0.14)
    x = list(range(len(points)))
    rto_lines = {
        "budget": _newest(points, "rto_budget_s") if rto_budget_s is None else rto_budget_s,
        "objective": _newest(points, "rto_objective_s")
        if rto_objective_s is None
        else rto_objective_s,
    }
    rpo_objective = (
        _newest(points, "rpo_objective_s") if rpo_objective_s is None else rpo_objective_s
    )
    rpo_lines = {"objective": rpo_objective}
    _trend_panel(
        rto_ax,
        x,
        points,
        [p.rto_s for p in points],
        "RTO (s)",
        rto_lines,
        [p.rto_error_s for p in points],
    )
    _trend_panel(rpo_ax, x, points, [p.rpo_s for p in points], "RPO (s)", rpo_lines, None)
    rpo_ax.set_xticks(x, [_run_label(p) for p in points], fontsize=8)
    rpo_ax.set_xlabel("run (UTC start, run id suffix), oldest first", fontsize=9)
    rpo_ax.set_xlim(-0.5, len(points) - 0.5)
    _trend_legend(fig, points)
    _title(fig, title, _trend_subtitle(points))
    return _png(fig)


def _newest(points: Sequence[TrendPoint], attribute: str) -> float | None:
    values = [getattr(p, attribute) for p in points if getattr(p, attribute) is not None]
    return values[-1] if values else None


def _trend_panel(
    ax: Axes,
    x: Sequence[int],
    points: Sequence[TrendPoint],
    values: Sequence[float | None],
    ylabel: str,
    lines: Mapping[str, float | None],
    errors: Sequence[float | None] | None,
) -> None:
    shown = [v for v in values if v is not None]
    top = max([*shown, 0.0])
    top = top * 1.3 if top > 0 else 1.0
    ax.plot(x, [float("nan") if v is None else v for v in values], color="#999999", lw=1)
    for i, (p, v) in enumerate(zip(points, values, strict=True)):
        color = VERDICT_COLORS.get(p.verdict, "#7f7f7f")
        if v is None:
            why = "no verdict\nfile" if p.verdict == NO_VERDICTS else "not\nmeasured"
            ax.plot(x[i], 0, marker="x", color=color, ms=8, mew=1.5, zorder=4)
            ax.annotate(
                why,
                (x[i], 0),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                color=color,
            )
            continue
        err = errors[i] if errors is not None else None
        ax.errorbar(x[i], v, yerr=err, fmt="o", color=color, ms=7, capsize=4, zorder=4)
        ax.annotate(f"{v:.3g}", (x[i], v), xytext=(6, 4), textcoords="offset points", fontsize=7)
    top = _objective_lines(ax, lines, top)
    ax.set_ylim(-0.04 * top, top)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", color="#e5e5e5", lw=0.6)
    ax.tick_params(labelsize=8)


def _objective_lines(ax: Axes, lines: Mapping[str, float | None], top: float) -> float:
    """Draw the lines within 3x the figures' range (widening it); note the rest."""
    notes = []
    for name, value in lines.items():
        if value is None:
            continue
        if value <= 3 * top:
            style = ":" if name == "budget" else "--"
            ax.axhline(value, color=FAIL, ls=style, lw=1.2)
            ax.annotate(
                f"{name} {value:g} s",
                (0, value),
                xycoords=("axes fraction", "data"),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=8,
                color=FAIL,
            )
            top = max(top, value * 1.15)
        else:
            notes.append(f"{name} {value:g} s: off the scale")
    _off_scale_note(ax, "; ".join(notes), 0.995, 0.96, "top")
    return top


def _run_label(p: TrendPoint) -> str:
    suffix = p.run_id.rsplit("-", 1)[-1]
    when = p.started_at.strftime("%m-%d %H:%M") if isinstance(p.started_at, datetime) else ""
    return f"{when}\n{suffix}" if when else _short(str(p.started_at), 18)


def _trend_legend(fig: Figure, points: Sequence[TrendPoint]) -> None:
    from matplotlib.lines import Line2D

    verdicts = dict.fromkeys(p.verdict for p in points)
    handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            color=VERDICT_COLORS.get(v, "#7f7f7f"),
            label=f"run verdict: {v}",
        )
        for v in verdicts
    ]
    fig.legend(
        handles=handles,
        loc="upper right",
        ncol=len(handles),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.99, 0.945),
    )


def _trend_subtitle(points: Sequence[TrendPoint]) -> str:
    rtos = [p.rto_s for p in points if p.rto_s is not None]
    parts = [f"{len(points)} runs", f"{len(rtos)} with an RTO"]
    if rtos:
        parts.append(f"RTO {min(rtos):.2f}-{max(rtos):.2f} s")
    return "  |  ".join(parts)
