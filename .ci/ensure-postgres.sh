#!/usr/bin/env bash
# Makes sure the PostgreSQL 15 server binaries (initdb, pg_ctl, pg_basebackup, pg_rewind) exist.
set -euo pipefail
find_bindir() {
  if [ -n "${DRKIT_PG_BINDIR:-}" ] && [ -x "$DRKIT_PG_BINDIR/initdb" ]; then echo "$DRKIT_PG_BINDIR"; return; fi
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_rewind" ]; then echo "$d"; return; fi
  done
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
}
if [ -n "$(find_bindir)" ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: the PostgreSQL server binaries (initdb, pg_ctl) are missing; install Debian's postgresql-15 (sudo apt-get install postgresql-15) or set DRKIT_PG_BINDIR" >&2
  exit 1
fi
echo "setup: installing PostgreSQL server binaries with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || apt-get install -y -qq postgresql >/dev/null
if [ -z "$(find_bindir)" ]; then
  echo "setup: apt-get installed PostgreSQL but initdb is still not found; set DRKIT_PG_BINDIR" >&2
  exit 1
fi
