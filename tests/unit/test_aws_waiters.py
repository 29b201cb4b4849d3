"""The AWS waiters against scripted describe calls and a fake clock: nothing sleeps for real."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drkit.aws.waiters import (
    THROTTLING_CODES,
    WaitFailed,
    WaitTimedOut,
    wait_db_available,
    wait_instance_state,
    wait_route53_insync,
    wait_until,
)
from drkit.clients.aws import AwsRequestError
from drkit.errors import ConfigError

pytestmark = pytest.mark.unit


class FakeClock:
    """Monotonic time that only moves when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """Answers in order (an exception is raised); the last answer repeats forever."""

    def __init__(self, answers: Iterable[Any]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, **_kwargs: Any) -> Any:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer


def client_error(code: str, operation: str = "Describe") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (scripted)"}}, operation)


def fake_client(**methods: Script) -> Any:
    return SimpleNamespace(meta=SimpleNamespace(endpoint_url="http://fake-aws"), **methods)


def change(status: str) -> dict[str, Any]:
    return {"ChangeInfo": {"Id": "/change/C1", "Status": status}}


def db(status: str, replica_of: str | None = None) -> dict[str, Any]:
    instance = {"DBInstanceIdentifier": "dr", "DBInstanceStatus": status}
    if replica_of:
        instance["ReadReplicaSourceDBInstanceIdentifier"] = replica_of
    return {"DBInstances": [instance]}


def ec2(state: str) -> dict[str, Any]:
    return {"Reservations": [{"Instances": [{"InstanceId": "i-1", "State": {"Name": state}}]}]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_route53_change_pending_then_insync(clock: FakeClock) -> None:
    route53 = fake_client(
        get_change=Script([change("PENDING"), change("PENDING"), change("INSYNC")])
    )
    waited = wait_route53_insync(
        route53, "/change/C1", budget_s=60, interval_s=2, clock=clock, sleep=clock.sleep
    )
    assert (waited.state, waited.polls, waited.throttled) == ("INSYNC", 3, 0)
    assert clock.sleeps == [2, 2]
    assert waited.elapsed_s == 4


def test_db_transitional_states_and_throttling_are_not_done(clock: FakeClock) -> None:
    rds = fake_client(
        describe_db_instances=Script(
            [
                db("modifying"),
                client_error("Throttling"),
                client_error("ThrottlingException"),
                db("backing-up"),
                db("rebooting"),
                db("available"),
            ]
        )
    )
    waited = wait_db_available(
        rds, "dr", budget_s=600, interval_s=5, clock=clock, sleep=clock.sleep
    )
    assert (waited.state, waited.polls, waited.throttled) == ("available", 6, 2)
    # a throttle doubles the interval per throttle in a row; an answer resets it
    assert clock.sleeps == [5, 10, 20, 5, 5]


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES))
def test_every_throttling_code_backs_off_and_is_counted(clock: FakeClock, code: str) -> None:
    ec2_client = fake_client(
        describe_instances=Script([client_error(code), client_error(code), ec2("running")])
    )
    waited = wait_instance_state(
        ec2_client, "i-1", "running", budget_s=120, interval_s=5, clock=clock, sleep=clock.sleep
    )
    assert (waited.polls, waited.throttled) == (3, 2)
    assert clock.sleeps == [10, 20]


def test_backoff_is_capped_and_never_sleeps_past_the_deadline(clock: FakeClock) -> None:
    throttled = Script([client_error("RequestLimitExceeded")])
    with pytest.raises(WaitTimedOut) as caught:
        wait_until(
            throttled,
            lambda _value: True,
            what="a throttled call",
            budget_s=100,
            interval_s=4,
            max_backoff_s=30,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps == [8, 16, 30, 30, 16]  # 8+16+30+30 = 84, then the last 16 to 100
    assert caught.value.last_state == "throttled (RequestLimitExceeded)"
    assert "6 polls, 6 throttled" in str(caught.value)


def test_other_errors_propagate_mapped_at_the_seam(clock: FakeClock) -> None:
    rds = fake_client(describe_db_instances=Script([client_error("AccessDenied")]))
    with pytest.raises(AwsRequestError) as caught:
        wait_db_available(rds, "dr", budget_s=60, clock=clock, sleep=clock.sleep)
    assert caught.value.code == "AccessDenied"
    assert "http://fake-aws" in str(caught.value)
    assert clock.sleeps == []


def test_terminal_failure_state_fails_fast(clock: FakeClock) -> None:
    rds = fake_client(
        describe_db_instances=Script([db("modifying"), db("incompatible-parameters")])
    )
    with pytest.raises(WaitFailed) as caught:
        wait_db_available(rds, "dr", budget_s=900, interval_s=10, clock=clock, sleep=clock.sleep)
    assert not isinstance(caught.value, WaitTimedOut)
    message = str(caught.value)
    assert "RDS instance dr to be available" in message
    assert "incompatible-parameters" in message
    assert "waiting will not change that" in message
    assert clock.sleeps == [10]  # gave up on the second poll, not at the budget


def test_terminated_instance_ends_a_wait_for_running(clock: FakeClock) -> None:
    ec2_client = fake_client(describe_instances=Script([ec2("pending"), ec2("terminated")]))
    with pytest.raises(WaitFailed, match="the instance is terminated"):
        wait_instance_state(ec2_client, "i-1", "running", 300, clock=clock, sleep=clock.sleep)


def test_timeout_names_what_the_last_state_and_the_budget(clock: FakeClock) -> None:
    rds = fake_client(describe_db_instances=Script([db("modifying")]))
    with pytest.raises(WaitTimedOut) as caught:
        wait_db_available(rds, "dr", budget_s=30, interval_s=10, clock=clock, sleep=clock.sleep)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert (error.what, error.last_state, error.budget_s) == (
        "RDS instance dr to be available",
        "modifying",
        30,
    )
    assert "within its 30s budget" in str(error)
    assert "still in a transitional state" in str(error)
    assert clock.now == 1030.0  # the last poll happened at the deadline, not after it
    assert clock.sleeps == [10, 10, 10]


def test_promotion_that_never_takes_times_out_as_still_a_replica(clock: FakeClock) -> None:
    """moto's promote_read_replica leaves the replica source in place: `available` alone
    would have returned at once, before a real promotion even starts."""
    rds = fake_client(describe_db_instances=Script([db("available", replica_of="arn:db:prim")]))
    with pytest.raises(WaitTimedOut) as caught:
        wait_db_available(
            rds, "dr", budget_s=20, standalone=True, interval_s=10, clock=clock, sleep=clock.sleep
        )
    assert caught.value.last_state == "available, still a read replica of arn:db:prim"
    assert "does not move on by itself" in str(caught.value)


def test_standalone_wait_ends_once_the_replica_source_is_gone(clock: FakeClock) -> None:
    rds = fake_client(
        describe_db_instances=Script(
            [db("available", "arn:db:prim"), db("modifying", "arn:db:prim"), db("available")]
        )
    )
    waited = wait_db_available(
        rds, "dr", budget_s=600, standalone=True, interval_s=10, clock=clock, sleep=clock.sleep
    )
    assert (waited.state, waited.polls) == ("available", 3)


def test_unknown_instance_state_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown EC2 instance state 'up'"):
        wait_instance_state(fake_client(), "i-1", "up", 10)


def test_mapped_throttling_error_is_still_throttling(clock: FakeClock) -> None:
    answers = Script([AwsRequestError("slow down", "TooManyRequestsException"), "done"])
    waited = wait_until(
        answers,
        lambda value: value == "done",
        what="x",
        budget_s=10,
        interval_s=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert (waited.polls, waited.throttled) == (2, 1)
