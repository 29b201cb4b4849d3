"""The `drkit` command line as a user runs it: help on every command, `--json` alone on stdout,
one-line errors with the documented exit status, progress on stderr; rollback after a killed
run, cost."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.cli import build_parser, main
from drkit.evidence.seal import load_signing_key, seal
from drkit.lab.process import observing_waits, wait_until
from drkit.progress import Progress
from tests.unit.faults.test_rollback import _run_killed_child
from tests.unit.test_seal import build_package, meta_for

pytestmark = pytest.mark.unit


def drkit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": "27900"}
    env = {k: v for k, v in env.items() if not k.startswith("DRKIT_SIGNING_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_drkit_rollback_heals_what_a_killed_run_left_and_is_idempotent(tmp_path: Path) -> None:
    state, flag = _run_killed_child(tmp_path, "after")
    assert flag.exists()
    first = drkit("rollback", home=state)
    assert first.returncode == 0 and "healed [1]" in first.stdout, first.stdout + first.stderr
    assert not flag.exists()
    again = drkit("rollback", "--json", home=state)
    assert again.returncode == 0 and json.loads(again.stdout)["healed"] == []


def test_drkit_cost_defaults_to_four_years(tmp_path: Path) -> None:
    result = drkit("cost", "--json", home=tmp_path)
    assert json.loads(result.stdout)["break_even_years"] == 4.0


def test_a_bad_cost_input_is_one_clear_line(tmp_path: Path) -> None:
    result = drkit("cost", "--outage-hours", "0", home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == "drkit: error: cost input outage_hours=0.0 must be a positive number"
    )


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Done]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`drkit ARGS` in this process (fast), with a state folder of the test's own."""
    monkeypatch.setenv("DRKIT_HOME", str(tmp_path))
    monkeypatch.setenv("DRKIT_LAB_PORT_BASE", "27900")  # nothing of this test listens there
    for name in ("DRKIT_SIGNING_KEY", "DRKIT_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Done:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


# -- help: every command and option says what it does -----------------------------------------


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command path, parser, the one-line help its parent shows) for every parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                yield (*path, choice.dest), child, choice.help
                yield from _commands(child, (*path, choice.dest))


def test_every_command_and_option_has_help() -> None:
    root = build_parser()
    missing = []
    for path, parser, summary in [((), root, root.description), *_commands(root)]:
        name = " ".join(("drkit", *path))
        if not summary:
            missing.append(f"{name}: no one-line help")
        if not parser.description:
            missing.append(f"{name}: no description")
        if "exit status:" not in (parser.epilog or ""):
            missing.append(f"{name}: no exit status in the epilog")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}: no help")
    assert missing == []


def test_the_tree_holds_the_documented_commands() -> None:
    commands = {" ".join(path) for path, _, _ in _commands(build_parser())}
    assert {
        "lab up", "lab status", "lab reset", "lab down", "lab watcher", "lab aws-config",
        "rollback", "evidence build", "evidence keygen", "evidence verify", "evidence archive",
        "abort", "plan", "serve", "cost",
    } <= commands  # fmt: skip


def test_every_command_that_prints_a_result_offers_json() -> None:
    without = [
        " ".join(path)
        for path, parser, _ in _commands(build_parser())
        if parser._defaults.get("func") is not None
        and "--json" not in parser._option_string_actions
    ]
    assert without == ["serve"]  # a server, not a result


@pytest.mark.parametrize("path", ["", "lab", "lab up", "evidence archive", "cost", "abort"])
def test_help_renders_with_defaults_and_examples(path: str, cli: Cli) -> None:
    done = cli(*path.split(), "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert "exit status: 0" in done.stdout
    if path == "cost":
        assert "(default: 4.0)" in done.stdout and "(default: False)" not in done.stdout
    if path:
        assert "examples:\n  drkit " in done.stdout


# -- --json: JSON alone on stdout --------------------------------------------------------------


def test_cost_json_has_inputs_and_break_even(cli: Cli) -> None:
    done = cli("cost", "--outage-hours", "8", "--json")
    data = json.loads(done.stdout)
    assert done.returncode == 0 and data["break_even_years"] == 8.0


def test_abort_and_clear_json(cli: Cli) -> None:
    wrote = json.loads(cli("abort", "--reason", "desk", "--json").stdout)
    assert wrote["action"] == "abort" and wrote["reason"] == "desk"
    assert Path(wrote["stop_file"]).is_file() and wrote["open_faults_run"] is None
    cleared = json.loads(cli("abort", "--clear", "--json").stdout)
    assert cleared == {"action": "clear", "stop_file": wrote["stop_file"], "removed": True}


def test_lab_status_json_of_a_stopped_lab_is_json_only_and_exits_1(cli: Cli) -> None:
    done = cli("lab", "status", "--json")
    data = json.loads(done.stdout)  # nothing else on stdout
    assert done.returncode == 1 and data["healthy"] is False
    assert data["components"][0]["component"] == "toxiproxy"


def test_lab_status_text_names_what_is_unhealthy(cli: Cli) -> None:
    done = cli("lab", "status")
    assert done.returncode == 1
    assert done.stderr.startswith("not healthy: toxiproxy;") and "drkit lab up" in done.stderr


def test_lab_down_json_on_a_stopped_lab(tmp_path: Path, cli: Cli) -> None:
    done = cli("lab", "down", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "command": "lab down",
        "state": str(tmp_path.resolve()),
        "purged": False,
    }


def test_keygen_verify_json_and_a_wrong_key(tmp_path: Path, cli: Cli) -> None:
    keys = json.loads(cli("evidence", "keygen", str(tmp_path / "k.pem"), "--json").stdout)
    assert set(keys) == {"private_key", "public_key", "public_key_sha256"}
    other = tmp_path / "other.pem"
    cli("evidence", "keygen", str(other))
    folder = build_package(tmp_path / "out")
    zip_path = seal(folder, meta=meta_for(folder), key=load_signing_key(tmp_path / "k.pem"))

    good = cli(
        "evidence",
        "verify",
        str(zip_path),
        "--public-key",
        keys["public_key"],
        "--json",
    )
    assert good.returncode == 0 and json.loads(good.stdout)["ok"] is True
    wrong = cli(
        "evidence",
        "verify",
        str(zip_path),
        "--public-key",
        str(tmp_path / "other.pub.pem"),
    )
    assert (
        wrong.returncode == 1 and "NOT intact" in wrong.stdout and "Traceback" not in wrong.stderr
    )


# -- user mistakes: one line, what to do, the right exit status --------------------------------


def one_error_line(done: Done) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drkit: error: "), done.stderr
    return lines[0]


def test_aws_config_into_a_missing_folder_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    done = cli("lab", "aws-config", "--out", str(tmp_path / "no" / "lab.toml"))
    assert done.returncode == 2
    assert "does not exist; create it first" in one_error_line(done)


def test_aws_config_without_a_lab_says_to_start_it(cli: Cli) -> None:
    done = cli("lab", "aws-config", "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert one_error_line(done).endswith("is not running; start it with `drkit lab up`")


def test_lab_reset_without_a_lab_says_to_start_it(cli: Cli) -> None:
    done = cli("lab", "reset")
    assert done.returncode == 1
    assert one_error_line(done).endswith("start it with `drkit lab up`")


def test_keygen_under_a_file_is_one_line(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "file").write_text("")
    done = cli("evidence", "keygen", str(tmp_path / "file" / "k.pem"))
    assert done.returncode == 2
    assert str(tmp_path / "file") in one_error_line(done)


def test_evidence_build_with_a_bad_quarter(tmp_path: Path, cli: Cli) -> None:
    args = ("--results", str(tmp_path), "--quarter", "2026-Q5", "--out", str(tmp_path / "o"))
    done = cli("evidence", "build", *args)
    assert done.returncode == 2 and "write it as YYYY-Qn" in one_error_line(done)
    assert not (tmp_path / "o").exists()


def test_serve_on_a_taken_port_is_one_line(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port))
    assert done.returncode == 2 and done.stdout == ""
    assert "choose another --port" in one_error_line(done)


def test_a_bad_option_value_is_argparse_usage(cli: Cli) -> None:
    done = cli("lab", "watcher", "maybe")
    assert done.returncode == 2 and "invalid choice: 'maybe'" in done.stderr


# -- progress ----------------------------------------------------------------------------------


def test_a_wait_shows_what_and_its_budget() -> None:
    progress = Progress("lab up", stream=io.StringIO(), tty=False)
    progress("postgres: starting")
    with progress.waiting("us-west-2 to stream WAL (log: /x/y.log)", 20):
        line = progress.line(now=time.monotonic() + 3.2)
    assert line is not None and line.startswith(
        "lab up: postgres: starting: waiting for us-west-2 to stream WAL ... 3."
    )
    assert line.endswith(" s of 20 s")
    assert progress.line(now=time.monotonic()) == "lab up: postgres: starting ... 0.0 s"


def test_a_narrow_line_keeps_the_clock() -> None:
    progress = Progress("lab up", stream=io.StringIO(), tty=False)
    progress("documents: a long stage name that will not fit on a narrow terminal")
    line = progress.line(width=40)
    assert line is not None and len(line) == 40 and line.endswith("… ... 0.0 s")


def test_quick_work_prints_nothing_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("lab reset", stream=stream, tty=False) as progress:
        progress("toxiproxy: removing toxics")
        progress("postgres: restoring replication")
    assert stream.getvalue() == ""


def test_a_long_wait_is_printed_every_few_seconds_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("lab up", stream=stream, tty=False, every_s=0.1, tick_s=0.02) as progress:
        progress("moto: starting")
        with progress.waiting("moto", 20):
            time.sleep(0.35)
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 4, lines
    assert all(line.startswith("lab up: moto: starting: waiting for moto ... ") for line in lines)


def test_on_a_terminal_the_line_is_redrawn_then_erased() -> None:
    stream = io.StringIO()
    with Progress("evidence build", stream=stream, tty=True, tick_s=0.01) as progress:
        progress("sealing")
        time.sleep(0.05)
    text = stream.getvalue()
    assert "\r\x1b[Kevidence build: sealing ... " in text and text.endswith("\r\x1b[K")


def test_wait_until_reports_to_the_observer() -> None:
    seen: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def observer(what: str, budget_s: float) -> Iterator[None]:
        seen.append((what, budget_s))
        yield

    with observing_waits(observer):
        wait_until(lambda: True, 7, "the thing")
    wait_until(lambda: True, 7, "unobserved")
    assert seen == [("the thing", 7)]
