"""drkit: disaster-recovery drills that measure RTO and RPO on real systems.

The names below are the seed's public API; every figure they return is measured.
"""

from __future__ import annotations

from drkit.evidence.compliance import ComplianceReporter, generate_compliance_report
from drkit.failover.monitor import ReplicationMonitor, ReplicationStatus
from drkit.failover.orchestrator import FailoverOrchestrator, execute_failover
from drkit.failover.result import FailoverResult
from drkit.failover.verifier import DRVerifier, verify_dr_readiness

__version__ = "0.1.0"

__all__ = [
    "ComplianceReporter",
    "DRVerifier",
    "FailoverOrchestrator",
    "FailoverResult",
    "ReplicationMonitor",
    "ReplicationStatus",
    "__version__",
    "execute_failover",
    "generate_compliance_report",
    "verify_dr_readiness",
]
