"""Configured secrets, and a scan of every byte of a package for them.

A secret is any value the run was configured with that must never reach evidence: the lab's
database passwords (`<state>/secrets.json`), and environment variables whose names say they
hold one (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*API_KEY*`, `*PRIVATE_KEY*`, `DRKIT_SIGNING_KEY`).
Values shorter than MIN_LENGTH are too common to scan for and are reported as such.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|SIGNING_KEY", re.I)
MIN_LENGTH = 8
NOT_SECRETS = frozenset({"GITHUB_TOKEN_URL"})  # names that match but hold no secret


def configured_secrets(
    state: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """name -> value of every configured secret long enough to scan for."""
    environ = os.environ if environ is None else environ
    found = {
        f"environment variable {name}": value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and name not in NOT_SECRETS and len(value) >= MIN_LENGTH
    }
    if state is not None and (path := state / "secrets.json").exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        for name, value in stored.items() if isinstance(stored, dict) else ():
            if isinstance(value, str) and len(value) >= MIN_LENGTH:
                found[f"lab secret {name!r} ({path})"] = value
    return found


@dataclass(frozen=True)
class Leak:
    file: str
    secret: str  # the secret's name, never its value

    def describe(self) -> str:
        return f"{self.file} holds {self.secret}"


def _needles(secrets: Mapping[str, str]) -> dict[str, list[bytes]]:
    """Each secret as it could appear: raw, JSON-escaped, and URL-quoted."""
    from urllib.parse import quote

    needles: dict[str, list[bytes]] = {}
    for name, value in secrets.items():
        forms = {value, json.dumps(value)[1:-1], quote(value, safe="")}
        needles[name] = [f.encode() for f in forms if f]
    return needles


def scan_bytes(data: bytes, secrets: Mapping[str, str], where: str) -> list[Leak]:
    return [
        Leak(where, name)
        for name, forms in _needles(secrets).items()
        if any(form in data for form in forms)
    ]


def scan_folder(folder: Path, secrets: Mapping[str, str]) -> list[Leak]:
    """Every byte of every file below `folder`."""
    leaks: list[Leak] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        leaks += scan_bytes(path.read_bytes(), secrets, str(path.relative_to(folder)))
    return leaks


def scan_zip(path: Path, secrets: Mapping[str, str]) -> list[Leak]:
    """The archive's raw bytes and each member's uncompressed bytes."""
    import zipfile

    leaks = scan_bytes(path.read_bytes(), secrets, path.name)
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            leaks += scan_bytes(archive.read(member), secrets, f"{path.name}:{member}")
    return leaks


def describe(leaks: Iterable[Leak]) -> str:
    return "; ".join(leak.describe() for leak in leaks)
