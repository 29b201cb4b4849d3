"""Polling waiters for AWS state changes, with a seam for the clock and the sleep.

`wait_until` polls a describe call until a predicate holds: throttling answers are backed off
and counted, transitional states (pending, modifying, rebooting, ...) are simply not done yet,
a terminal failure state ends the wait at once, and running out of budget raises
`WaitTimedOut` naming what was awaited, the last state seen and the budget. The concrete
waiters (Route 53 change, RDS instance, EC2 instance) sit on top of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from drkit.clients.aws import AwsRequestError, aws_errors, error_code
from drkit.errors import ConfigError, DrillError

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "PriorRequestNotComplete",  # Route 53: too many changes in flight, retry later
    }
)

# States from which the resource moves on by itself; a wait that ends in one of them ran out
# of budget, while a wait that ends in any other state is probably waiting for nothing.
TRANSITIONAL_STATES = frozenset(
    {
        "pending",
        "PENDING",
        "creating",
        "modifying",
        "rebooting",
        "backing-up",
        "starting",
        "stopping",
        "shutting-down",
        "upgrading",
        "renaming",
        "maintenance",
        "storage-optimization",
        "configuring-enhanced-monitoring",
        "configuring-iam-database-auth",
        "configuring-log-exports",
        "resetting-master-credentials",
        "converting-to-vpc",
        "moving-to-vpc",
        "failing-over",
        "switching-over",
        "initiating",
    }
)

# RDS instance states that waiting will not turn into "available".
DB_FAILURE_STATES = frozenset(
    {
        "failed",
        "deleting",
        "delete-precheck",
        "stopped",
        "storage-full",
        "restore-error",
        "insufficient-capacity",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-parameters",
        "incompatible-restore",
        "incompatible-credentials",
        "inaccessible-encryption-credentials",
        "inaccessible-encryption-credentials-recoverable",
    }
)

EC2_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
EC2_GONE_STATES = frozenset({"shutting-down", "terminated"})


class WaitFailed(DrillError):
    """The awaited resource reached a state it will not leave by waiting (failed, deleted)."""

    def __init__(self, message: str, *, what: str, last_state: str) -> None:
        super().__init__(message)
        self.what, self.last_state = what, last_state


class WaitTimedOut(WaitFailed, TimeoutError):
    """The budget ran out first; the message names what, the last state seen and the budget."""

    def __init__(self, message: str, *, what: str, last_state: str, budget_s: float) -> None:
        super().__init__(message, what=what, last_state=last_state)
        self.budget_s = budget_s


@dataclass(frozen=True)
class Waited(Generic[T]):
    """How a wait ended: the last answer, its state, and what it took to get there."""

    value: T
    state: str
    polls: int
    throttled: int
    elapsed_s: float


def throttling_code(exc: BaseException) -> str | None:
    """The throttling error code of a botocore ClientError or a mapped AwsRequestError."""
    code = exc.code if isinstance(exc, AwsRequestError) else error_code(exc)
    return code if code in THROTTLING_CODES else None


def wait_until(
    describe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    what: str,
    budget_s: float,
    interval_s: float,
    state: Callable[[T], str] = str,
    failure: Callable[[T], str | None] = lambda _value: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    max_backoff_s: float = 30.0,
) -> Waited[T]:
    """Poll ``describe`` until ``done``; ``failure`` returns why a state is terminal, if it is.

    Throttled polls back off exponentially (``interval_s`` doubled per throttle in a row, at
    most ``max_backoff_s``); other errors propagate. The last poll happens at the deadline.
    """
    start = clock()
    deadline = start + budget_s
    polls = throttled = streak = 0
    last = "no answer yet"
    while True:
        polls += 1
        try:
            value = describe()
        except Exception as exc:
            code = throttling_code(exc)
            if code is None:
                raise
            throttled, streak, last = throttled + 1, streak + 1, f"throttled ({code})"
            delay = min(interval_s * 2**streak, max_backoff_s)
        else:
            streak, last = 0, state(value)
            if (why := failure(value)) is not None:
                raise WaitFailed(
                    f"{what}: gave up after {clock() - start:.1f}s, {why} (state {last!r}); "
                    "waiting will not change that, look at the resource in the AWS console",
                    what=what,
                    last_state=last,
                )
            if done(value):
                return Waited(value, last, polls, throttled, clock() - start)
            delay = interval_s
        now = clock()
        if now >= deadline:
            raise _timed_out(what, last, budget_s, polls, throttled)
        sleep(min(delay, deadline - now))


def _timed_out(what: str, last: str, budget_s: float, polls: int, throttled: int) -> WaitTimedOut:
    head = last.split(",")[0].strip()
    hint = (
        "still in a transitional state: raise the budget if this is normal for the resource"
        if head in TRANSITIONAL_STATES or last.startswith("throttled")
        else "a state that does not move on by itself: check that the change was really made"
    )
    return WaitTimedOut(
        f"{what}: not done within its {budget_s:g}s budget; last state seen {last!r} "
        f"({polls} polls, {throttled} throttled); {hint}",
        what=what,
        last_state=last,
        budget_s=budget_s,
    )


# -- concrete waiters -----------------------------------------------------------------------


def _where(client: Any) -> str:
    return str(client.meta.endpoint_url)


def wait_route53_insync(
    route53: Any,
    change_id: str,
    budget_s: float,
    *,
    interval_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited[dict[str, Any]]:
    """Wait for a Route 53 change to be INSYNC (propagated to every authoritative server)."""

    def describe() -> dict[str, Any]:
        with aws_errors(f"route53 get_change {change_id}", _where(route53)):
            return dict(route53.get_change(Id=change_id)["ChangeInfo"])

    return wait_until(
        describe,
        lambda info: info.get("Status") == "INSYNC",
        what=f"Route 53 change {change_id} to be INSYNC",
        budget_s=budget_s,
        interval_s=interval_s,
        state=lambda info: str(info.get("Status")),
        clock=clock,
        sleep=sleep,
    )


def describe_db_instance(rds: Any, identifier: str) -> dict[str, Any]:
    with aws_errors(f"rds describe_db_instances {identifier}", _where(rds)):
        answer = rds.describe_db_instances(DBInstanceIdentifier=identifier)
    return dict(answer["DBInstances"][0])


def db_state(instance: dict[str, Any]) -> str:
    status = str(instance.get("DBInstanceStatus"))
    source = instance.get("ReadReplicaSourceDBInstanceIdentifier")
    return f"{status}, still a read replica of {source}" if source else status


def wait_db_available(
    rds: Any,
    identifier: str,
    budget_s: float,
    *,
    standalone: bool = False,
    interval_s: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited[dict[str, Any]]:
    """Wait for an RDS instance to be available; ``standalone`` (after a promotion) also waits
    for it to stop being a read replica, since "available" alone is seen before the promotion
    has even started."""

    def done(instance: dict[str, Any]) -> bool:
        available = instance.get("DBInstanceStatus") == "available"
        return available and not (
            standalone and instance.get("ReadReplicaSourceDBInstanceIdentifier")
        )

    def failure(instance: dict[str, Any]) -> str | None:
        status = instance.get("DBInstanceStatus")
        return f"the instance is {status}" if status in DB_FAILURE_STATES else None

    return wait_until(
        lambda: describe_db_instance(rds, identifier),
        done,
        what=f"RDS instance {identifier} to be available"
        + (" and standalone" if standalone else ""),
        budget_s=budget_s,
        interval_s=interval_s,
        state=db_state,
        failure=failure,
        clock=clock,
        sleep=sleep,
    )


def describe_instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    with aws_errors(f"ec2 describe_instances {instance_id}", _where(ec2)):
        answer = ec2.describe_instances(InstanceIds=[instance_id])
    return dict(answer["Reservations"][0]["Instances"][0])


def instance_state(instance: dict[str, Any]) -> str:
    return str(instance.get("State", {}).get("Name"))


def wait_instance_state(
    ec2: Any,
    instance_id: str,
    state: str,
    budget_s: float,
    *,
    interval_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited[dict[str, Any]]:
    """Wait for an EC2 instance to reach ``state``; a terminated instance ends the wait."""
    if state not in EC2_STATES:
        raise ConfigError(
            f"unknown EC2 instance state {state!r}; use one of {', '.join(EC2_STATES)}"
        )
    gone = _others(EC2_GONE_STATES, state)

    def failure(instance: dict[str, Any]) -> str | None:
        current = instance_state(instance)
        return f"the instance is {current}" if current in gone else None

    return wait_until(
        lambda: describe_instance(ec2, instance_id),
        lambda instance: instance_state(instance) == state,
        what=f"EC2 instance {instance_id} to be {state}",
        budget_s=budget_s,
        interval_s=interval_s,
        state=instance_state,
        failure=failure,
        clock=clock,
        sleep=sleep,
    )


def _others(states: Iterable[str], wanted: str) -> frozenset[str]:
    return frozenset(s for s in states if s != wanted)
