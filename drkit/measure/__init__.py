"""Measurement: the history of a drill, the clients that write it, and the checkers that judge it.

Record with ``History`` (plus ``Probe`` and ``Writer`` over a ``Transport`` and ``Resolver``),
then judge with pure ``check_*`` functions returning ``Verdict``s, and map them to a drill
``Outcome`` for pytest and Allure.
"""

from __future__ import annotations

from drkit.measure.availability import (
    Segment,
    availability_timeline,
    check_availability,
    check_flapping,
)
from drkit.measure.budget import Budget, check_budget
from drkit.measure.chain import ChainBreak, ChainRead, read_chain
from drkit.measure.clients import Probe, Writer, content_hash
from drkit.measure.history import History, LoadedHistory, Op, load_history
from drkit.measure.ops import Disaster, find_disaster, writer_period
from drkit.measure.outcome import (
    Outcome,
    allure_categories,
    failure_message,
    merge_outcomes,
    outcome_of,
    pytest_status,
)
from drkit.measure.reads import check_read_your_writes, check_stale_reads
from drkit.measure.rpo import (
    RPO_OBJECTIVE,
    FinalRead,
    RpoMeasurement,
    check_rpo,
    check_split_brain,
    measure_rpo,
)
from drkit.measure.rto import RTO_OBJECTIVE, Phase, RtoMeasurement, check_rto, measure_rto
from drkit.measure.transport import (
    Ack,
    DefiniteFailure,
    HttpTransport,
    OutcomeUnknown,
    ReadResult,
    ResolutionFailed,
    Resolver,
    StaticResolver,
    Transport,
)
from drkit.measure.verdict import UNKNOWN, Verdict, checker, merge_validity, merge_verdicts

__all__ = [
    "RPO_OBJECTIVE",
    "RTO_OBJECTIVE",
    "UNKNOWN",
    "Ack",
    "Budget",
    "ChainBreak",
    "ChainRead",
    "DefiniteFailure",
    "Disaster",
    "FinalRead",
    "History",
    "HttpTransport",
    "LoadedHistory",
    "Op",
    "Outcome",
    "OutcomeUnknown",
    "Phase",
    "Probe",
    "ReadResult",
    "ResolutionFailed",
    "Resolver",
    "RpoMeasurement",
    "RtoMeasurement",
    "Segment",
    "StaticResolver",
    "Transport",
    "Verdict",
    "Writer",
    "allure_categories",
    "availability_timeline",
    "check_availability",
    "check_budget",
    "check_flapping",
    "check_read_your_writes",
    "check_rpo",
    "check_rto",
    "check_split_brain",
    "check_stale_reads",
    "checker",
    "content_hash",
    "failure_message",
    "find_disaster",
    "load_history",
    "measure_rpo",
    "measure_rto",
    "merge_outcomes",
    "merge_validity",
    "merge_verdicts",
    "outcome_of",
    "pytest_status",
    "read_chain",
    "writer_period",
]
