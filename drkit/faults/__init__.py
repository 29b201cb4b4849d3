"""Faults (injected, healed, read back) and recovery actions, journalled in the run's ledger.

The engine uses ``Ledger`` as a context manager around the fault window; ``rollback`` heals
what a killed run left open; ``ensure_no_open_faults`` refuses a new run until then.
"""

from __future__ import annotations

from drkit.faults.base import (
    FAULTS,
    CallTimedOut,
    Fault,
    RecoveryAction,
    Registry,
    call_bounded,
    register_fault,
)
from drkit.faults.journal import (
    LEDGER_FILE,
    POINTER_FILE,
    FaultRecord,
    LedgerState,
    read_ledger,
    read_pointer,
)
from drkit.faults.ledger import (
    ROLLBACK_COMMAND,
    DrillInterrupted,
    Ledger,
    RecoveryFailed,
    ensure_no_open_faults,
)
from drkit.faults.rollback import RollbackReport, RunStillRunning, rollback

__all__ = [
    "FAULTS",
    "LEDGER_FILE",
    "POINTER_FILE",
    "ROLLBACK_COMMAND",
    "CallTimedOut",
    "DrillInterrupted",
    "Fault",
    "FaultRecord",
    "Ledger",
    "LedgerState",
    "RecoveryAction",
    "RecoveryFailed",
    "Registry",
    "RollbackReport",
    "RunStillRunning",
    "call_bounded",
    "ensure_no_open_faults",
    "read_ledger",
    "read_pointer",
    "register_fault",
    "rollback",
]
