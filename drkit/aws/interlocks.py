"""The aws target's safety interlocks: blast radius, market hours, stop conditions, kill switch.

Two interlocks refuse before a destructive step (`check_destructive`, `check_market_hours`,
both raising `InterlockRefused`); two watch while faults are applied (`StopWatch` for the
config's stop conditions, `KillSwitch` for `drkit abort` or a `STOP` file in the state folder).

How a drill uses the watchers (the wiring lives in the drill, not here):

1. Inside the ledger's ``with`` block (its SIGINT/SIGTERM handlers are installed), start both
   with ``on_trip=interrupt_main`` / ``on_abort=interrupt_main``. `interrupt_main` sends SIGINT
   to the main thread, so the abort takes the path Ctrl-C already takes: the ledger's handler
   raises `DrillInterrupted` (or holds it until an inject or heal in progress has finished),
   the step unwinds, and the ledger heals every open fault on exit. A real signal (rather than
   `_thread.interrupt_main`, which only sets a flag) also cuts short a blocking sleep or socket
   read in the main thread, so the heal starts within about one poll interval.
2. On the way out, stop the watchers first, in a ``try`` whose ``finally`` leaves the ledger:
   after ``stop()`` returns, the callback is never called again, but a SIGINT already sent may
   still surface from ``stop()`` itself.
3. Tell an abort from an operator's Ctrl-C by the watchers, not by the signal: when
   ``killswitch.tripped`` or ``stopwatch.tripped`` holds a reason, record it in the history
   and raise `AbortRequested(reason)` from the `DrillInterrupted`; the outcome mapping turns
   that into ``aborted`` (an ordinary Ctrl-C stays ``interrupted``). Check `abort_requested`
   before a drill starts, too: a STOP file left in place trips the KillSwitch at once.

A callback that raises in a watcher's thread is kept on the watcher (``callback_error``) and
never propagates; a seam (alarm reader, probe) that raises or hangs counts as a failed check.
"""

from __future__ import annotations

import _thread
import getpass
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

from drkit.aws.config import ENVIRONMENTS, AwsConfig, StopCondition, Window
from drkit.errors import ConfigError, DrillError, UnsafeDrillRefused
from drkit.faults.base import call_bounded

ALLOW_DESTRUCTIVE_FLAG = "--dr-allow-destructive"
OVERRIDE_MARKET_HOURS_FLAG = "--dr-override-market-hours"
STOP_FILE = "STOP"


class InterlockRefused(UnsafeDrillRefused):
    """A safety interlock of the aws target refused a destructive step; the message says
    which resource or window, why, and the flag or config change that would allow it."""


class AbortRequested(DrillError):
    """The drill was aborted by a stop condition or `drkit abort`; its outcome is ``aborted``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"drill aborted: {reason}")


# -- blast radius -------------------------------------------------------------------------

# kind of resource -> where the config declares it, and how to read those declarations
DECLARED_UNDER: dict[str, tuple[str, Callable[[AwsConfig], set[str]]]] = {
    "security group": (
        "regions.{region}.network.security_groups",
        lambda c: {g for r in c.regions.values() for g in r.network.security_groups},
    ),
    "network ACL": (
        "regions.{region}.network.network_acls",
        lambda c: {a for r in c.regions.values() for a in r.network.network_acls},
    ),
    "subnet": (
        "regions.{region}.network.subnets",
        lambda c: {s for r in c.regions.values() for s in r.network.subnets},
    ),
    "database": (
        "regions.{region}.database.identifier",
        lambda c: {r.database.identifier for r in c.regions.values() if r.database.identifier},
    ),
    "EC2 instance": (
        "regions.{region}.database.ec2_instance_id",
        lambda c: {
            r.database.ec2_instance_id for r in c.regions.values() if r.database.ec2_instance_id
        },
    ),
    "FIS template": ("fis_templates", lambda c: set(c.fis_templates.values())),
}


def _declaration(kind: str) -> tuple[str, Callable[[AwsConfig], set[str]]] | None:
    return next((v for k, v in DECLARED_UNDER.items() if k.lower() == kind.lower()), None)


def declared_resources(config: AwsConfig, kind: str) -> frozenset[str]:
    """Every resource of ``kind`` (a key of DECLARED_UNDER) the config lets a drill touch."""
    found = _declaration(kind)
    if found is None:
        raise ConfigError(f"unknown resource kind {kind!r}; use one of {', '.join(DECLARED_UNDER)}")
    return frozenset(found[1](config))


def check_destructive(
    resource: str,
    *,
    kind: str,
    declared: Collection[str],
    allowed: bool,
    region: str | None = None,
) -> None:
    """Refuse a destructive step on ``resource`` unless `--dr-allow-destructive` was given
    and the config declares the resource; one message names every missing condition."""
    problems = []
    if not allowed:
        problems.append(f"{ALLOW_DESTRUCTIVE_FLAG} was not given")
    if not resource or resource not in declared:
        listing = ", ".join(sorted(declared)) or "none"
        problems.append(f"it is not declared in the config (declared {kind}s: {listing})")
    if not problems:
        return
    fixes = []
    if not allowed:
        fixes.append(f"pass {ALLOW_DESTRUCTIVE_FLAG} once the change is approved")
    if not resource or resource not in declared:
        found = _declaration(kind)
        key = found[0].format(region=region or "<region>") if found else "the config"
        fixes.append(f"declare {resource or 'the resource'} under {key}")
    raise InterlockRefused(
        f"refused to change {kind} {resource or '(no id given)'} on the aws target: "
        f"{' and '.join(problems)}; {', and '.join(fixes)}"
    )


# -- market hours -------------------------------------------------------------------------

DEFAULT_BLACKOUT = (Window(start=time(9, 30), end=time(16, 0)),)

# Closures the NYSE announced outside its holiday rules (national days of mourning, 9/11,
# Hurricane Sandy); a trading-day check must know them, the holiday list does not carry them.
SPECIAL_CLOSURES = frozenset(
    {
        date(2001, 9, 11), date(2001, 9, 12), date(2001, 9, 13), date(2001, 9, 14),
        date(2004, 6, 11), date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30),
        date(2018, 12, 5), date(2025, 1, 9),
    }
)  # fmt: skip
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous computus of Meeus, Jones and Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    rest = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * rest) // 451
    month, day = divmod(h + rest - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday of the month (0 = Monday); n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date | None:
    """NYSE Rule 7.2: a Saturday holiday closes the Friday before, a Sunday one the Monday
    after; New Year's Day on a Saturday is not observed (the Friday ends the year)."""
    if day.weekday() == 5:
        return None if (day.month, day.day) == (1, 1) else day - timedelta(days=1)
    return day + timedelta(days=1) if day.weekday() == 6 else day


def nyse_holidays(year: int) -> set[date]:
    """The days the NYSE is closed for a holiday in ``year``, by rule, as observed."""
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 12, 25)]
    if year >= 2022:
        fixed.append(date(year, 6, 19))  # Juneteenth
    floating = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        easter_sunday(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving Day
    }
    return floating | {d for d in map(_observed, fixed) if d is not None}


def is_trading_day(day: date) -> bool:
    """A weekday that is neither an NYSE holiday nor a special closure."""
    return day.weekday() < 5 and day not in nyse_holidays(day.year) | SPECIAL_CLOSURES


def describe_window(window: Window) -> str:
    days = ",".join(_WEEKDAYS[d] for d in window.weekdays)
    trading = " on exchange trading days" if window.exchange_holidays else ""
    return f"{window.start:%H:%M}-{window.end:%H:%M} {window.timezone} ({days}{trading})"


def _applies(window: Window, day: date) -> bool:
    if day.weekday() not in window.weekdays:
        return False
    return not window.exchange_holidays or is_trading_day(day)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"the clock returned {now.isoformat()} without a time zone")
    return now


def in_blackout(now: datetime, windows: Sequence[Window]) -> Window | None:
    """The first window containing ``now`` (start inclusive, end exclusive), or None.

    A window whose start is after its end runs past midnight and belongs to the day it
    starts on; its weekdays and trading-day rule are judged on that day.
    """
    for window in windows:
        if window.start == window.end:
            raise ConfigError(
                f"blackout window {describe_window(window)} is empty (start equals end); "
                "give it a start before its end, or one after it to run past midnight"
            )
        local = _aware(now).astimezone(ZoneInfo(window.timezone))
        clock, day = local.time().replace(tzinfo=None), local.date()
        if window.start < window.end:
            inside = window.start <= clock < window.end
        elif clock >= window.start:
            inside = True
        else:
            inside, day = clock < window.end, day - timedelta(days=1)
        if inside and _applies(window, day):
            return window
    return None


@dataclass(frozen=True)
class MarketHoursDecision:
    """What the market-hours interlock decided, for the evidence (`to_json`)."""

    allowed: bool
    environment: str
    at: datetime  # the instant judged, as the clock gave it
    local_time: datetime  # that instant in the window's zone (or the first window's)
    window: Window | None = None  # the blackout window the instant fell in
    override_reason: str | None = None  # set when an override let the step run in a window

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "environment": self.environment,
            "at": self.at.astimezone(UTC).isoformat(),
            "local_time": self.local_time.isoformat(),
            "window": describe_window(self.window) if self.window else None,
            "override_reason": self.override_reason,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_market_hours(
    *,
    environment: str,
    windows: Sequence[Window],
    override_reason: str | None,
    now: Callable[[], datetime] = _utc_now,
) -> MarketHoursDecision:
    """Refuse a destructive step in production inside a blackout window (by default 09:30-16:00
    New York time on NYSE trading days) unless overridden with a reason; staging is never
    refused. No configured window means the default one: production always has a blackout."""
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"environment {environment!r} is not known; use one of {', '.join(ENVIRONMENTS)}"
        )
    at = _aware(now())
    windows = tuple(windows) or DEFAULT_BLACKOUT
    if environment != "production":
        zone = ZoneInfo(windows[0].timezone)
        return MarketHoursDecision(True, environment, at, at.astimezone(zone))
    window = in_blackout(at, windows)
    local = at.astimezone(ZoneInfo((window or windows[0]).timezone))
    reason = (override_reason or "").strip() or None
    if window is None:
        return MarketHoursDecision(True, environment, at, local)
    if reason is None:
        raise InterlockRefused(
            f"refused a destructive step in production at {local:%Y-%m-%d %H:%M:%S %Z} "
            f"({window.timezone}): inside the market-hours blackout window "
            f"{describe_window(window)}; run it outside the window, or pass "
            f'{OVERRIDE_MARKET_HOURS_FLAG} "REASON" (the reason is recorded in the evidence)'
        )
    return MarketHoursDecision(True, environment, at, local, window, reason)


# -- watchers: one daemon thread each, polling until stopped or tripped ---------------------


class _Watcher:
    """Calls ``poll`` every ``interval_s`` in a daemon thread; the first reason it returns is
    kept (`tripped`) and handed once to ``on_trip``. Nothing escapes the thread."""

    def __init__(
        self,
        name: str,
        poll: Callable[[], str | None],
        on_trip: Callable[[str], None],
        *,
        interval_s: float,
    ) -> None:
        if not interval_s > 0:
            raise ConfigError(f"{name}: interval_s={interval_s!r}; give a positive number")
        self.name = name
        self.interval_s = interval_s
        self.polls = 0
        self.callback_error: BaseException | None = None
        self._poll, self._on_trip = poll, on_trip
        self._tripped: str | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"drkit-{name}", daemon=True)

    @property
    def tripped(self) -> str | None:
        """The reason of the first trip, or None."""
        return self._tripped

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop polling; once this returns, ``on_trip`` is never called again. Waits at most
        ``timeout`` seconds for the thread (a seam call still running ends on its own)."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._wake.is_set():
            try:
                reason = self._poll()
            except BaseException as exc:  # a watcher that cannot watch stops the drill
                reason = f"{self.name} crashed ({type(exc).__name__}: {exc})"
            self.polls += 1
            if reason is not None:
                self._trip(reason)
                return
            self._wake.wait(self.interval_s)

    def _trip(self, reason: str) -> None:
        with self._lock:
            if self._stopping:
                return
            self._tripped = reason
            try:
                self._on_trip(reason)
            except BaseException as exc:
                self.callback_error = exc


class StopWatch(_Watcher):
    """Watches the config's stop conditions during the fault window: a CloudWatch alarm in
    ALARM, or a guard probe that fails, trips it. A seam that raises or takes longer than
    ``call_timeout_s`` is a miss: a probe's miss is a failure; an alarm that cannot be read
    for ``misses_to_trip`` polls in a row trips it too (a drill does not run blind)."""

    def __init__(
        self,
        conditions: Sequence[StopCondition],
        *,
        alarm_state: Callable[[StopCondition], str],
        probe: Callable[[str], bool],
        interval_s: float,
        on_trip: Callable[[str], None],
        call_timeout_s: float = 10.0,
        misses_to_trip: int = 1,
    ) -> None:
        for condition in conditions:
            if not condition.alarm and not condition.probe_url:
                raise ConfigError(
                    f"stop condition {condition.name!r} names neither an alarm nor a "
                    "probe_url; give it one (or both)"
                )
        self.conditions = tuple(conditions)
        self._alarm_state, self._probe = alarm_state, probe
        self._call_timeout_s, self._misses_to_trip = call_timeout_s, max(1, misses_to_trip)
        self._misses: dict[tuple[str, str], int] = {}
        super().__init__("stop-condition watch", self._check, on_trip, interval_s=interval_s)

    def _check(self) -> str | None:
        for condition in self.conditions:
            reason = self._check_alarm(condition) or self._check_probe(condition)
            if reason is not None:
                return reason
        return None

    def _call(self, fn: Callable[[], Any], what: str) -> tuple[Any, str | None]:
        try:
            return call_bounded(fn, self._call_timeout_s, what), None
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _missed(self, condition: StopCondition, seam: str, problem: str | None) -> bool:
        key = (condition.name, seam)
        self._misses[key] = self._misses.get(key, 0) + 1 if problem else 0
        return self._misses[key] >= self._misses_to_trip

    def _check_alarm(self, condition: StopCondition) -> str | None:
        if not condition.alarm:
            return None
        where = f"CloudWatch alarm {condition.alarm}" + (
            f" in {condition.region}" if condition.region else ""
        )
        state, problem = self._call(lambda: self._alarm_state(condition), f"read of {where}")
        if problem is None and state == "ALARM":
            return f"stop condition {condition.name!r}: {where} is in ALARM"
        if self._missed(condition, "alarm", problem):
            return (
                f"stop condition {condition.name!r}: {where} could not be read for "
                f"{self._misses_to_trip} poll(s) in a row (last: {problem})"
            )
        return None

    def _check_probe(self, condition: StopCondition) -> str | None:
        url = condition.probe_url
        if not url:
            return None
        answered, problem = self._call(lambda: self._probe(url), f"guard probe {url}")
        if problem is None and not answered:
            problem = "it did not answer 2xx"
        if self._missed(condition, "probe", problem):
            return f"stop condition {condition.name!r}: guard probe {url} failed ({problem})"
        return None


# -- kill switch: `drkit abort`, or a STOP file in the state folder --------------------------


def stop_file(state: Path) -> Path:
    return Path(state) / STOP_FILE


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def request_abort(state: Path, reason: str) -> Path:
    """Write the STOP file (reason, who, when, as JSON), atomically; returns its path."""
    path = stop_file(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"reason": reason, "by": _who(), "at": datetime.now(UTC).isoformat()}
    temporary = path.with_name(f".{STOP_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(temporary, path)
    return path


def read_abort(state: Path) -> dict[str, Any] | None:
    """The STOP file's content, or None without one. Any STOP file counts, even one made with
    `touch` or cut short: its reason then says so."""
    path = stop_file(state)
    if not path.exists():
        return None
    try:
        body = json.loads(path.read_text() or "{}")
    except (OSError, ValueError) as exc:
        body = {"reason": f"{path} is present (unreadable: {exc})"}
    if not isinstance(body, dict) or not str(body.get("reason") or "").strip():
        body = {**(body if isinstance(body, dict) else {}), "reason": f"{path} is present"}
    return body


def abort_requested(state: Path) -> str | None:
    """The reason of a requested abort, or None when there is no STOP file."""
    body = read_abort(state)
    return None if body is None else str(body["reason"])


def clear_abort(state: Path) -> bool:
    """Remove the STOP file; True when there was one."""
    path = stop_file(state)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


class KillSwitch(_Watcher):
    """Trips when the state folder holds a STOP file (`drkit abort`), checked at start and
    then every ``interval_s``; a STOP file left from before trips it at once."""

    def __init__(
        self, state: Path, on_abort: Callable[[str], None], interval_s: float = 0.5
    ) -> None:
        self.state = Path(state)
        super().__init__("kill switch", self._check, on_abort, interval_s=interval_s)

    def _check(self) -> str | None:
        reason = abort_requested(self.state)
        return None if reason is None else f"drkit abort: {reason}"


def interrupt_main(reason: str) -> bool:
    """Abort the drill through its interruption path: SIGINT to the main thread, whose handler
    (the ledger's while it is open) heals the open faults. Usable as ``on_trip``/``on_abort``.

    Returns False without sending anything when SIGINT is ignored or left to the operating
    system's default, which would kill the process before it could heal."""
    if not callable(signal.getsignal(signal.SIGINT)):
        print(f"drkit: cannot abort the drill (SIGINT is not handled): {reason}", file=sys.stderr)
        return False
    print(f"drkit: aborting the drill, healing its faults: {reason}", file=sys.stderr, flush=True)
    main = threading.main_thread().ident
    if hasattr(signal, "pthread_kill") and main is not None:
        signal.pthread_kill(main, signal.SIGINT)  # interrupts a blocking call as well
    else:
        _thread.interrupt_main(signal.SIGINT)
    return True
