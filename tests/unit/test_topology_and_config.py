"""Addresses, proxies, ports and the lab lock, without any service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drkit.config import LAB_PROFILE, LabPorts
from drkit.errors import ConfigError
from drkit.lab.database import lsn_to_int, primary_conninfo
from drkit.lab.lock import LOCK_ENV, lab_lock
from drkit.lab.topology import (
    REGIONS,
    backend_address,
    ingress_address,
    other_region,
    proxy_spec,
    replication_link,
)
from drkit.paths import new_run_id

pytestmark = pytest.mark.unit


def test_each_region_owns_its_own_loopback_block() -> None:
    assert backend_address("us-east-1") == "127.0.1.1"
    assert backend_address("us-west-2") == "127.0.2.1"
    assert ingress_address("us-east-1", "public") == "127.0.1.20"
    assert ingress_address("us-west-2", "us-east-1") == "127.0.2.11"


def test_every_source_destination_pair_is_its_own_listener() -> None:
    listeners = {
        proxy_spec(r, "db", s, 25432).listen for r in REGIONS for s in (*REGIONS, "public")
    }
    assert len(listeners) == 6


def test_the_replication_link_is_the_standby_regions_path_to_the_primary() -> None:
    link = replication_link("us-east-1", "us-west-2", 25432)
    assert link.name == "us-east-1.db.from-us-west-2"
    assert (link.listen, link.upstream) == ("127.0.1.12:25432", "127.0.1.1:25432")


def test_an_unknown_region_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown region 'eu-west-1'; the lab has us-east-1"):
        other_region("eu-west-1")
    with pytest.raises(ConfigError, match="unknown traffic source"):
        ingress_address("us-east-1", "mars")


def test_port_base_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_LAB_PORT_BASE", "30000")
    assert LabPorts.from_env().postgres == 30032
    monkeypatch.setenv("DRKIT_LAB_PORT_BASE", "80")
    with pytest.raises(ConfigError, match="out of range"):
        LabPorts.from_env()


def test_primary_conninfo_bounds_every_wait_and_holds_no_password() -> None:
    from drkit.config import LabSettings
    from drkit.lab.postgres import PgCluster, PgNode, PgTools

    tools = PgTools(Path("/nonexistent"), None)
    east = PgCluster(PgNode("us-east-1", "127.0.1.1", 25432, Path("/x/east")), tools)
    west = PgCluster(PgNode("us-west-2", "127.0.2.1", 25432, Path("/x/west")), tools)
    conninfo = primary_conninfo(east, west, LabSettings())
    for setting in (
        "connect_timeout=2",
        "keepalives=1",
        f"tcp_user_timeout={LAB_PROFILE.tcp_user_timeout_ms}",
        "host=127.0.1.12",
        "passfile=/x/west/pgpass",
    ):
        assert setting in conninfo
    assert "password" not in conninfo.replace("passfile", "")


def test_lsn_arithmetic() -> None:
    assert lsn_to_int("0/0") == 0
    assert lsn_to_int("1/10") == (1 << 32) + 16
    assert lsn_to_int(None) is None


def test_run_ids_are_sortable_and_unique() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i.split("-")[0]) == 16 and i.split("-")[0].endswith("Z") for i in ids)


def test_the_lock_refuses_another_process_and_names_the_holder(tmp_path: Path) -> None:
    before = os.environ.get(LOCK_ENV)  # a session lab may hold its own lock around us
    with lab_lock(tmp_path, "run-a"):
        assert os.environ[LOCK_ENV] == "run-a"
        code = (
            "import sys; from pathlib import Path; from drkit.lab.lock import lab_lock\n"
            "from drkit.errors import LabLocked\n"
            "try:\n"
            f"    with lab_lock(Path({str(tmp_path)!r}), 'run-b'): print('acquired')\n"
            "except LabLocked as e: print('refused:', e)\n"
        )
        env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        inherited = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.startswith("refused:") and "run-a" in out.stdout
    assert inherited.stdout.strip() == "acquired"
    assert os.environ.get(LOCK_ENV) == before
    with lab_lock(tmp_path, "run-c"):  # released: the next run gets it
        pass


def test_the_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    code = (
        "import os; from pathlib import Path; from drkit.lab.lock import lab_lock\n"
        f"with lab_lock(Path({str(tmp_path)!r}), 'doomed'): os._exit(9)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 9
    with lab_lock(tmp_path, "next") as holder:
        assert holder == "next"
