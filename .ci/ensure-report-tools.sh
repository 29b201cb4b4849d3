#!/usr/bin/env bash
# Installs what the HTML report needs, from nothing on Debian (as root) and quickly when present:
# Chromium (the offline check opens the report in it), Node.js, and Allure 3 from
# reports/package-lock.json into reports/node_modules (re-installed only when the lock changes).
set -euo pipefail
cd "$(dirname "$0")/.."

# apt_install PACKAGE...: tries the local package index first; runs apt-get update only if needed.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: the HTML report needs $*; install with: sudo apt-get install -y $*" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "setup: installing $* with apt-get"
  if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
  fi
}

command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_install chromium
{ command -v node >/dev/null && command -v npm >/dev/null; } || apt_install nodejs npm

lock=reports/package-lock.json
stamp=reports/node_modules/.drkit-lock.sha256
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -f reports/node_modules/allure/cli.js ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: installing Allure 3 from $lock (npm ci --prefix reports)"
npm ci --prefix reports --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
