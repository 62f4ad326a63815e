#!/usr/bin/env bash
# Install PostgreSQL's server binaries (initdb, pg_ctl) from Debian's packages when they are missing.
# Used by scripts/mlflow_server.sh and the team-server test; a no-op when a server is installed.
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

find_bindir() {
  local dir
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
    return 0
  fi
  return 1
}

if bindir=$(find_bindir); then
  echo "$bindir"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL is not installed and this is not root: run 'sudo apt-get install -y postgresql' first." >&2
  exit 1
fi
echo "Installing PostgreSQL from Debian's packages (apt-get, once)..." >&2
# The StreamGuard server runs its own cluster: do not create (and start) Debian's default "main" cluster.
mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends postgresql >&2
find_bindir || { echo "PostgreSQL was installed but initdb/pg_ctl were not found" >&2; exit 1; }
