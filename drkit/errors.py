"""The one error hierarchy of drkit.

Every error a user can cause or meet carries a message that says what went wrong, where,
and what to do next; the CLI and the pytest plugin print it without a traceback::

    DrillError
    ├── ConfigError(DrillError, ValueError)     bad option, config key, parameter or input file
    ├── LabError                                 the embedded lab cannot start, stop or reset
    │   ├── PortInUse                            a port the lab needs is taken
    │   ├── MissingBinary                        PostgreSQL or Toxiproxy binaries are absent
    │   └── LabLocked                            another run holds the lab
    ├── TargetUnreachable                        a service of the target does not answer
    │   └── DnsLookupFailed (clients.resolver)   a lookup got no answer
    │       └── NameNotFound                     NXDOMAIN
    ├── ToxiproxyRequestError (clients.toxiproxy) Toxiproxy refused or did not apply a request
    ├── AwsRequestError (clients.aws)            an AWS (or moto) call failed
    │   └── AwsFeatureUnavailable (aws.control)  the endpoint lacks an API (e.g. Aurora on moto)
    ├── ControlActionFailed (aws.control)        an AWS change did not read back as made
    ├── WaitFailed (aws.waiters)                 an awaited AWS state ended in failure
    │   └── WaitTimedOut(WaitFailed, TimeoutError) ... or did not come within its budget
    ├── FaultInjectionFailed                     a fault could not be applied or read back
    ├── HealFailed                               a fault could not be removed or read back
    ├── RecoveryFailed (faults.ledger)           a recovery action failed or did not read back
    ├── OpenFaultsRemain                         a new run refused while a killed run left faults
    ├── RunStillRunning (faults.rollback)        rollback refused: the owning run is alive
    ├── PhaseFailed (failover.orchestrator)      a failover phase could not be completed
    ├── UnsafeDrillRefused                       a safety interlock refused the drill
    │   └── InterlockRefused (aws.interlocks)    blast radius or market hours refused a step
    ├── AbortRequested (aws.interlocks)          a stop condition or `drkit abort` ended it
    ├── EvidenceError (evidence.seal)            a package cannot be sealed, verified, archived
    │   ├── BrokenChain                          a history or ledger chain is broken
    │   └── ArchiveRefused                       the bucket's Object Lock did not read back
    ├── ReportError (evidence.html)              Allure could not render the HTML report
    │   └── ReportToolMissing                    Node.js or Allure 3 is not installed
    └── BrowserError (evidence.browser)          the offline check's Chromium failed

Signals are not errors: `DrillInterrupted` (faults.ledger) subclasses KeyboardInterrupt so
that `except Exception` never swallows a Ctrl-C or SIGTERM.
"""

from __future__ import annotations


class DrillError(Exception):
    """Base of every error drkit raises on purpose."""


class ConfigError(DrillError, ValueError):
    """A user-supplied value is wrong; the message names it and the fix."""


class LabError(DrillError):
    """The embedded lab cannot reach the state asked of it."""


class PortInUse(LabError):
    """A port the lab needs is already bound by another process."""


class MissingBinary(LabError):
    """A program the lab runs (PostgreSQL, Toxiproxy) is not installed."""


class LabLocked(LabError):
    """Another run holds the lab's lock."""


class TargetUnreachable(DrillError):
    """A service of the target did not answer within its timeout."""


class FaultInjectionFailed(DrillError):
    """A fault could not be applied, or reading it back showed it was not."""


class HealFailed(DrillError):
    """A fault could not be healed; the message says what is still applied."""


class OpenFaultsRemain(DrillError):
    """Faults from an earlier run are still open; heal them with `drkit rollback`."""


class UnsafeDrillRefused(DrillError):
    """A safety interlock refused to run the drill."""
