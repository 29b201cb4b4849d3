"""The aws target's safety interlocks: blast radius, market hours (NYSE calendar, DST), stop
conditions, the kill switch and `drkit abort`, and aborting a drill through its ledger."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drkit.aws.config import (
    AwsConfig,
    DatabaseConfig,
    NetworkConfig,
    Objectives,
    RegionConfig,
    Route53Config,
    SecretRef,
    StopCondition,
    Window,
)
from drkit.aws.interlocks import (
    DEFAULT_BLACKOUT,
    AbortRequested,
    InterlockRefused,
    KillSwitch,
    StopWatch,
    abort_requested,
    check_destructive,
    check_market_hours,
    clear_abort,
    declared_resources,
    easter_sunday,
    in_blackout,
    interrupt_main,
    is_trading_day,
    nyse_holidays,
    request_abort,
    stop_file,
)
from drkit.cli import main
from drkit.errors import ConfigError, DrillError, UnsafeDrillRefused
from drkit.faults.ledger import DrillInterrupted, Ledger
from drkit.faults.twins import FileFlagFault

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    """An instant given as New York wall-clock time."""
    return datetime(*args, tzinfo=NEW_YORK)


def wait_until(predicate: Callable[[], object], timeout: float = 1.0) -> float:
    """Seconds until ``predicate`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout}s", pytrace=False)
        time.sleep(0.005)
    return time.monotonic() - started


# -- blast radius ---------------------------------------------------------------------------


def test_a_declared_resource_passes_with_the_flag() -> None:
    check_destructive("sg-0abc", kind="security group", declared={"sg-0abc"}, allowed=True)


def test_without_the_flag_a_declared_resource_is_refused_naming_the_flag() -> None:
    with pytest.raises(InterlockRefused) as refused:
        check_destructive("sg-0abc", kind="security group", declared={"sg-0abc"}, allowed=False)
    message = str(refused.value)
    assert "security group sg-0abc" in message
    assert "--dr-allow-destructive was not given" in message
    assert "declare" not in message


def test_an_undeclared_resource_is_refused_naming_where_to_declare_it() -> None:
    with pytest.raises(InterlockRefused) as refused:
        check_destructive(
            "sg-9999",
            kind="security group",
            declared={"sg-0abc", "sg-0def"},
            allowed=True,
            region="us-east-1",
        )
    message = str(refused.value)
    assert "sg-9999" in message and "not declared" in message
    assert "declared security groups: sg-0abc, sg-0def" in message
    assert "under regions.us-east-1.network.security_groups" in message
    assert "--dr-allow-destructive" not in message


def test_both_conditions_missing_are_named_in_one_message() -> None:
    with pytest.raises(UnsafeDrillRefused) as refused:  # InterlockRefused is one
        check_destructive("acl-1", kind="network ACL", declared=(), allowed=False)
    message = str(refused.value)
    assert "--dr-allow-destructive was not given and it is not declared" in message
    assert "(declared network ACLs: none)" in message
    assert "regions.<region>.network.network_acls" in message
    assert isinstance(refused.value, DrillError)


def test_an_empty_resource_id_is_refused_even_when_allowed() -> None:
    with pytest.raises(InterlockRefused, match=r"\(no id given\)"):
        check_destructive("", kind="subnet", declared={""}, allowed=True)


def _config(**kw: object) -> AwsConfig:
    def region(name: str, groups: tuple[str, ...]) -> RegionConfig:
        db = DatabaseConfig(
            "db", 5432, "rag", "drkit", SecretRef(env="PW"), identifier=f"{name}-db"
        )
        return RegionConfig(name, db, f"https://{name}.example", NetworkConfig(groups))

    values: dict[str, object] = {
        "path": Path("drkit.toml"),
        "environment": "production",
        "primary_region": "us-east-1",
        "dr_region": "us-west-2",
        "regions": {
            "us-east-1": region("us-east-1", ("sg-east",)),
            "us-west-2": region("us-west-2", ("sg-west", "sg-west-2")),
        },
        "route53": Route53Config("Z1", "rag.example.com.", "upsert"),
        "promotion": "rds",
        "automation": "drkit-watcher",
        "cloudwatch_namespace": "DR",
        "evidence_bucket": "evidence",
        "timing_profile": "production",
        "objectives": Objectives(),
        "approver": None,
    }
    return AwsConfig(**{**values, **kw})  # type: ignore[arg-type]


def test_declared_resources_are_read_from_every_region_of_the_config() -> None:
    config = _config()
    assert declared_resources(config, "security group") == {"sg-east", "sg-west", "sg-west-2"}
    assert declared_resources(config, "Database") == {"us-east-1-db", "us-west-2-db"}
    with pytest.raises(ConfigError, match="unknown resource kind 'bucket'; use one of"):
        declared_resources(config, "bucket")


# -- the NYSE calendar ------------------------------------------------------------------------

# The NYSE's published holiday calendars (nyse.com, "Holidays & Trading Hours")
NYSE_PUBLISHED = {
    2025: {
        date(2025, 1, 1), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18),
        date(2025, 5, 26), date(2025, 6, 19), date(2025, 7, 4), date(2025, 9, 1),
        date(2025, 11, 27), date(2025, 12, 25),
    },
    2026: {
        date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 4, 3),
        date(2026, 5, 25), date(2026, 6, 19), date(2026, 7, 3), date(2026, 9, 7),
        date(2026, 11, 26), date(2026, 12, 25),
    },
    2027: {
        date(2027, 1, 1), date(2027, 1, 18), date(2027, 2, 15), date(2027, 3, 26),
        date(2027, 5, 31), date(2027, 6, 18), date(2027, 7, 5), date(2027, 9, 6),
        date(2027, 11, 25), date(2027, 12, 24),
    },
}  # fmt: skip


@pytest.mark.parametrize("year", sorted(NYSE_PUBLISHED))
def test_holidays_match_the_published_nyse_calendar(year: int) -> None:
    assert nyse_holidays(year) == NYSE_PUBLISHED[year]


def test_observance_rules_at_their_edges() -> None:
    # New Year's Day 2022 fell on a Saturday: not observed, the NYSE was open on 2021-12-31
    assert date(2021, 12, 31) not in nyse_holidays(2021)
    assert not any(d.month == 1 and d.day <= 3 for d in nyse_holidays(2022))
    assert date(2028, 1, 1) not in nyse_holidays(2028)
    assert date(2027, 12, 31) not in nyse_holidays(2027)  # same rule for 2028
    assert date(2023, 1, 2) in nyse_holidays(2023)  # a Sunday New Year's Day: Monday
    assert date(2022, 6, 20) in nyse_holidays(2022)  # a Sunday Juneteenth: Monday
    assert date(2021, 6, 18) not in nyse_holidays(2021)  # Juneteenth is a holiday from 2022
    assert date(2022, 12, 26) in nyse_holidays(2022)  # a Sunday Christmas: Monday


def test_easter_by_computus() -> None:
    assert [easter_sunday(y) for y in (2024, 2025, 2038, 2285)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2038, 4, 25),
        date(2285, 3, 22),
    ]


def test_trading_days_exclude_weekends_holidays_and_special_closures() -> None:
    assert is_trading_day(date(2026, 3, 9))
    assert not is_trading_day(date(2026, 3, 7))  # Saturday
    assert not is_trading_day(date(2026, 11, 26))  # Thanksgiving
    assert not is_trading_day(date(2025, 1, 9))  # national day of mourning (President Carter)
    assert date(2025, 1, 9) not in nyse_holidays(2025)  # a closure, not a holiday


# -- blackout windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (ny(2026, 3, 10, 9, 29, 59), False),
        (ny(2026, 3, 10, 9, 30), True),
        (ny(2026, 3, 10, 15, 59, 59), True),
        (ny(2026, 3, 10, 16, 0), False),  # the close: the end is exclusive
        (ny(2026, 11, 26, 11, 0), False),  # Thanksgiving
        (ny(2026, 7, 3, 11, 0), False),  # Independence Day observed
        (ny(2025, 1, 9, 11, 0), False),  # special closure
        (ny(2026, 3, 7, 11, 0), False),  # Saturday
        (ny(2026, 3, 8, 11, 0), False),  # Sunday, the day clocks spring forward
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), True),  # 09:30 EDT, the Monday after
        (datetime(2026, 3, 6, 13, 30, tzinfo=UTC), False),  # 08:30 EST, the Friday before
        (datetime(2026, 3, 6, 14, 30, tzinfo=UTC), True),  # 09:30 EST
        (datetime(2026, 11, 2, 13, 30, tzinfo=UTC), False),  # 08:30 EST after fall back
        (datetime(2026, 10, 30, 13, 30, tzinfo=UTC), True),  # 09:30 EDT before it
    ],
)
def test_default_window_at_its_edges(instant: datetime, inside: bool) -> None:
    assert (in_blackout(instant, DEFAULT_BLACKOUT) is not None) is inside


def test_a_window_on_the_dst_transition_day_follows_wall_clock_time() -> None:
    every_day = Window(clock(1, 0), clock(4, 0), weekdays=tuple(range(7)), exchange_holidays=False)
    # 2026-03-08: 01:59:59 EST is followed by 03:00:00 EDT; both are inside the window
    assert in_blackout(datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC), [every_day]) is every_day
    assert in_blackout(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), [every_day]) is every_day
    assert in_blackout(datetime(2026, 3, 8, 8, 0, tzinfo=UTC), [every_day]) is None  # 04:00 EDT


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    night = Window(clock(22, 0), clock(2, 0), timezone="Europe/London", weekdays=(4,))
    friday_late = datetime(2026, 3, 13, 23, 0, tzinfo=ZoneInfo("Europe/London"))
    assert in_blackout(friday_late, [night]) is night
    assert in_blackout(friday_late + timedelta(hours=2), [night]) is night  # Sat 01:00
    assert in_blackout(friday_late + timedelta(hours=3), [night]) is None  # Sat 02:00
    assert in_blackout(friday_late - timedelta(days=1), [night]) is None  # Thursday


def test_an_empty_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="empty"):
        in_blackout(ny(2026, 3, 10, 11), [Window(clock(9), clock(9))])


def test_production_inside_the_window_is_refused_naming_window_time_and_override() -> None:
    with pytest.raises(InterlockRefused) as refused:
        check_market_hours(
            environment="production",
            windows=(),
            override_reason=None,
            now=lambda: datetime(2026, 3, 9, 14, 15, tzinfo=UTC),
        )
    message = str(refused.value)
    assert "2026-03-09 10:15:00 EDT (America/New_York)" in message
    assert "09:30-16:00 America/New_York (Mon,Tue,Wed,Thu,Fri on exchange trading days)" in message
    assert '--dr-override-market-hours "REASON"' in message


def test_an_override_allows_the_step_and_is_recorded() -> None:
    decision = check_market_hours(
        environment="production",
        windows=DEFAULT_BLACKOUT,
        override_reason="  CHG-1234: regulator-mandated test, approved by the CRO ",
        now=lambda: ny(2026, 3, 10, 11, 0),
    )
    assert decision.allowed and decision.window is DEFAULT_BLACKOUT[0]
    record = decision.to_json()
    assert record["override_reason"] == "CHG-1234: regulator-mandated test, approved by the CRO"
    assert record["at"] == "2026-03-10T15:00:00+00:00"
    assert record["local_time"] == "2026-03-10T11:00:00-04:00"
    assert record["window"].startswith("09:30-16:00 America/New_York")


def test_a_blank_override_reason_is_no_override() -> None:
    with pytest.raises(InterlockRefused):
        check_market_hours(
            environment="production",
            windows=(),
            override_reason="   ",
            now=lambda: ny(2026, 3, 10, 11, 0),
        )


def test_outside_the_window_production_is_allowed_without_override() -> None:
    decision = check_market_hours(
        environment="production",
        windows=(),
        override_reason=None,
        now=lambda: ny(2026, 11, 26, 11, 0),  # Thanksgiving
    )
    assert decision.allowed and decision.window is None and decision.override_reason is None
    assert decision.local_time.tzinfo is not None and decision.local_time.hour == 11


def test_staging_is_never_refused() -> None:
    decision = check_market_hours(
        environment="staging",
        windows=DEFAULT_BLACKOUT,
        override_reason=None,
        now=lambda: ny(2026, 3, 10, 11, 0),
    )
    assert decision.allowed and decision.environment == "staging" and decision.window is None


def test_an_unknown_environment_and_a_naive_clock_are_refused() -> None:
    with pytest.raises(ConfigError, match="'prod' is not known"):
        check_market_hours(environment="prod", windows=(), override_reason=None)
    with pytest.raises(ValueError, match="without a time zone"):
        check_market_hours(
            environment="production",
            windows=(),
            override_reason=None,
            now=lambda: datetime(2026, 3, 10, 11, 0),
        )


# -- stop conditions --------------------------------------------------------------------------

ALARM = StopCondition("errors", alarm="rag-5xx", region="us-east-1")
GUARD = StopCondition("guard", probe_url="https://guard.example/health")


class Seams:
    """Alarm states and probe answers the test sets; every call counted."""

    def __init__(self) -> None:
        self.state = "OK"
        self.answers = True
        self.calls = 0
        self.trips: list[str] = []

    def alarm_state(self, condition: StopCondition) -> str:
        self.calls += 1
        if self.state == "raise":
            raise RuntimeError("ThrottlingException")
        return self.state

    def probe(self, url: str) -> bool:
        self.calls += 1
        return self.answers

    def watch(self, *conditions: StopCondition, **kw: object) -> StopWatch:
        return StopWatch(
            conditions or (ALARM, GUARD),
            alarm_state=self.alarm_state,
            probe=self.probe,
            interval_s=0.02,
            on_trip=self.trips.append,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def seams() -> Iterator[Seams]:
    yield Seams()


def test_an_alarm_in_alarm_trips_the_watch_within_a_bounded_time(seams: Seams) -> None:
    with seams.watch() as watch:
        wait_until(lambda: watch.polls >= 2)
        assert watch.tripped is None
        seams.state = "ALARM"
        assert wait_until(lambda: seams.trips, timeout=0.5) < 0.5
    assert seams.trips == [
        "stop condition 'errors': CloudWatch alarm rag-5xx in us-east-1 is in ALARM"
    ]
    assert watch.tripped == seams.trips[0]


def test_a_failing_guard_probe_trips_the_watch(seams: Seams) -> None:
    with seams.watch() as watch:
        seams.answers = False
        wait_until(lambda: seams.trips, timeout=0.5)
    assert watch.tripped == (
        "stop condition 'guard': guard probe https://guard.example/health failed "
        "(it did not answer 2xx)"
    )


def test_a_probe_that_hangs_counts_as_failing(seams: Seams) -> None:
    never = threading.Event()
    watch = StopWatch(
        (GUARD,),
        alarm_state=seams.alarm_state,
        probe=lambda url: never.wait(5),
        interval_s=0.02,
        on_trip=seams.trips.append,
        call_timeout_s=0.05,
    )
    with watch:
        wait_until(lambda: seams.trips, timeout=0.5)
    never.set()
    assert "did not return within 0.05s" in (watch.tripped or "")


def test_ok_and_insufficient_data_never_trip_and_the_watch_stops_cleanly(seams: Seams) -> None:
    with seams.watch() as watch:
        wait_until(lambda: watch.polls >= 3)
        seams.state = "INSUFFICIENT_DATA"
        polls = watch.polls
        wait_until(lambda: watch.polls >= polls + 3)
    started = time.monotonic()
    watch.stop()  # again: harmless
    assert time.monotonic() - started < 0.1
    assert watch.tripped is None and seams.trips == []
    assert not watch._thread.is_alive()
    seams.state = "ALARM"
    time.sleep(0.06)  # three intervals: nothing polls any more
    assert seams.trips == []


def test_an_unreadable_alarm_trips_after_the_misses_allowed(seams: Seams) -> None:
    seams.state = "raise"
    with seams.watch(ALARM, misses_to_trip=3) as watch:
        wait_until(lambda: seams.trips, timeout=0.5)
    assert watch.polls == 3
    assert watch.tripped == (
        "stop condition 'errors': CloudWatch alarm rag-5xx in us-east-1 could not be read for "
        "3 poll(s) in a row (last: RuntimeError: ThrottlingException)"
    )


def test_a_raising_callback_stays_in_the_thread(seams: Seams) -> None:
    def explode(reason: str) -> None:
        raise RuntimeError("callback broke")

    seams.state = "ALARM"
    watch = StopWatch(
        (ALARM,), alarm_state=seams.alarm_state, probe=seams.probe, interval_s=0.02,
        on_trip=explode,
    )  # fmt: skip
    with watch:
        wait_until(lambda: watch.callback_error is not None)
    assert watch.tripped is not None and "ALARM" in watch.tripped
    assert str(watch.callback_error) == "callback broke"


def test_a_condition_with_nothing_to_watch_is_a_config_error(seams: Seams) -> None:
    with pytest.raises(ConfigError, match="'empty' names neither an alarm nor a probe_url"):
        seams.watch(StopCondition("empty"))
    with pytest.raises(ConfigError, match="interval_s=0"):
        StopWatch((), alarm_state=seams.alarm_state, probe=seams.probe, interval_s=0,
                  on_trip=print)  # fmt: skip


# -- kill switch ------------------------------------------------------------------------------


def test_the_stop_file_says_why_who_and_when(tmp_path: Path) -> None:
    assert abort_requested(tmp_path) is None
    path = request_abort(tmp_path / "state", "pager: payments degraded")
    assert path == stop_file(tmp_path / "state") and path.name == "STOP"
    body = json.loads(path.read_text())
    assert body["reason"] == "pager: payments degraded"
    assert "@" in body["by"] and "pid" in body["by"]
    assert datetime.fromisoformat(body["at"]).tzinfo is not None
    assert abort_requested(tmp_path / "state") == "pager: payments degraded"
    assert clear_abort(tmp_path / "state") and not clear_abort(tmp_path / "state")
    assert abort_requested(tmp_path / "state") is None


def test_a_stop_file_made_by_hand_still_aborts(tmp_path: Path) -> None:
    stop_file(tmp_path).touch()
    assert abort_requested(tmp_path) == f"{tmp_path / 'STOP'} is present"
    stop_file(tmp_path).write_text("{not json")
    assert "is present (unreadable:" in (abort_requested(tmp_path) or "")


def test_the_kill_switch_sees_a_stop_file_within_two_intervals(tmp_path: Path) -> None:
    seen: list[str] = []
    interval = 0.05
    with KillSwitch(tmp_path, seen.append, interval_s=interval) as switch:
        wait_until(lambda: switch.polls >= 2)
        assert seen == []
        request_abort(tmp_path, "operator")
        assert wait_until(lambda: seen, timeout=1.0) <= 2 * interval
    assert seen == ["drkit abort: operator"] and switch.tripped == seen[0]


def test_a_stop_file_left_from_before_trips_at_once(tmp_path: Path) -> None:
    request_abort(tmp_path, "left over")
    seen: list[str] = []
    with KillSwitch(tmp_path, seen.append, interval_s=10):
        wait_until(lambda: seen, timeout=0.5)


def test_interrupt_main_cuts_a_blocking_sleep_short() -> None:
    class Aborted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Aborted

    previous = signal.signal(signal.SIGINT, handler)
    try:
        threading.Timer(0.05, interrupt_main, ("test",)).start()
        started = time.monotonic()
        with pytest.raises(Aborted):
            time.sleep(1)
        assert time.monotonic() - started < 0.5
    finally:
        signal.signal(signal.SIGINT, previous)


def test_interrupt_main_refuses_when_sigint_would_kill_the_process() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        assert interrupt_main("test") is False
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_file_aborts_a_drill_through_its_ledger_and_heals(tmp_path: Path) -> None:
    """The wiring the module docstring recommends, end to end with a file-backed fault."""
    flag = tmp_path / "flag"
    ledger = Ledger(tmp_path / "runs" / "run-1", state_dir=tmp_path / "state")
    switch = KillSwitch(tmp_path / "state", interrupt_main, interval_s=0.05)
    with pytest.raises(AbortRequested, match="drill aborted: drkit abort: operator") as raised:
        try:
            with ledger:
                ledger.inject(FileFlagFault(str(flag)))
                switch.start()
                try:
                    request_abort(tmp_path / "state", "operator")
                    time.sleep(1)  # the fault window; the abort cuts it short
                finally:
                    switch.stop()
        except DrillInterrupted as interrupted:
            assert switch.tripped is not None
            raise AbortRequested(switch.tripped) from interrupted
    assert not flag.exists() and ledger.open_faults == ()
    assert raised.value.reason == "drkit abort: operator"
    assert ledger.interrupted_by == "SIGINT"


# -- `drkit abort` ----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_drkit_abort_writes_the_stop_file_and_says_what_happens(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["abort", "--reason", "pager: payments degraded"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {home / 'STOP'}: pager: payments degraded" in out
    assert "heals its open faults and stops" in out and "drkit abort --clear" in out
    assert abort_requested(home) == "pager: payments degraded"


def test_drkit_abort_json_and_clear(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["abort", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["action"] == "abort" and report["stop_file"] == str(home / "STOP")
    assert report["reason"] == "requested with `drkit abort`" and report["open_faults_run"] is None
    assert main(["abort", "--clear"]) == 0
    assert "drills may run again" in capsys.readouterr().out
    assert not stop_file(home).exists()
    assert main(["abort", "--clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] is False


def test_drkit_abort_names_the_run_whose_faults_are_open(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drkit.faults.journal import write_pointer

    write_pointer(home, "20260310T150000Z-ab12", home / "ledger.jsonl")
    assert main(["abort"]) == 0
    assert "run 20260310T150000Z-ab12 (pid " in capsys.readouterr().out


def test_drkit_abort_refuses_reason_with_clear(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["abort", "--clear", "--reason", "x"])
    assert "not allowed with argument" in capsys.readouterr().err
