#!/usr/bin/env bash
# A team MLflow tracking server: PostgreSQL backend store, proxied artifact store, MLflow's own
# basic-auth. Everything it keeps (database cluster, artifacts, logs, generated secrets) lives in
# STREAMGUARD_MLFLOW_HOME, outside the repository; no secret is ever written into the project.
#
#   scripts/mlflow_server.sh start            # install PostgreSQL if missing, init once, start both
#   scripts/mlflow_server.sh add-user NAME    # password from STREAMGUARD_USER_PASSWORD (admin only)
#   scripts/mlflow_server.sh status | stop | uri
#
# Settings (environment):
#   STREAMGUARD_MLFLOW_HOME   state folder (default ~/.local/state/streamguard-mlflow; as root
#                             /var/lib/streamguard-mlflow, a path the 'postgres' user can reach)
#   MLFLOW_HOST, MLFLOW_PORT  where the server listens (127.0.0.1, 5000); MLFLOW_WORKERS (2)
#   STREAMGUARD_PG_PORT       PostgreSQL's port on 127.0.0.1 (5433)
#   MLFLOW_AUTH_ADMIN_PASSWORD  the admin's password on first start; else one is generated into
#                             $STREAMGUARD_MLFLOW_HOME/secrets/admin_password (mode 600)
#   STREAMGUARD_MLFLOW_DEFAULT_PERMISSION  what users get on experiments they do not own (READ)
#   STREAMGUARD_MLFLOW_AUTH_CACHE_TTL      seconds a checked password stays cached per worker (60; 0 = off)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/scripts/offline_env.sh"
python="${STREAMGUARD_PYTHON:-$repo/.venv/bin/python}"
export PATH="$(dirname "$python"):$PATH"  # mlflow starts uvicorn from the environment it runs in

if [ "$(id -u)" -eq 0 ]; then default_home=/var/lib/streamguard-mlflow; else default_home="${XDG_STATE_HOME:-$HOME/.local/state}/streamguard-mlflow"; fi
home="${STREAMGUARD_MLFLOW_HOME:-$default_home}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
pg_port="${STREAMGUARD_PG_PORT:-5433}"
default_permission="${STREAMGUARD_MLFLOW_DEFAULT_PERMISSION:-READ}"
auth_cache_ttl="${STREAMGUARD_MLFLOW_AUTH_CACHE_TTL:-60}"
db_user=mlflow

pgdata="$home/postgres"
secrets="$home/secrets"
logs="$home/logs"
pidfile="$home/mlflow.pid"
tracking_uri="http://$host:$port"

die() { echo "mlflow_server.sh: $*" >&2; exit 1; }

check_home() {
  mkdir -p "$home"
  home="$(cd "$home" && pwd -P)"
  case "$home/" in
    "$repo"/*) die "STREAMGUARD_MLFLOW_HOME=$home is inside the repository: secrets must stay outside it" ;;
  esac
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the 'postgres' system user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (Debian's postgresql package creates it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

random_secret() { "$python" -c 'import secrets; print(secrets.token_urlsafe(24))'; }

admin_password() {
  if [ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
    printf '%s' "$MLFLOW_AUTH_ADMIN_PASSWORD"
  elif [ -f "$secrets/admin_password" ]; then
    cat "$secrets/admin_password"
  else
    die "no admin password: set MLFLOW_AUTH_ADMIN_PASSWORD or start the server once to generate $secrets/admin_password"
  fi
}

init_postgres() {
  local bindir="$1"
  [ -f "$pgdata/PG_VERSION" ] && return 0
  echo "Creating the PostgreSQL cluster in $pgdata (first start only)..."
  mkdir -p "$pgdata" "$secrets"
  chmod 700 "$secrets"
  chmod o+x "$home"  # the postgres user must reach its data folder
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$home"; then
    die "the postgres user cannot reach $home (a parent folder is private): choose another STREAMGUARD_MLFLOW_HOME"
  fi
  local db_password pwfile
  db_password="$(random_secret)"
  # libpq reads the password from PGPASSFILE, so no URI or command line ever shows it.
  (umask 077; printf '127.0.0.1:%s:*:%s:%s\n' "$pg_port" "$db_user" "$db_password" > "$secrets/pgpass")
  pwfile="$(mktemp "$home/.pw.XXXXXX")"  # mode 600; initdb reads it, then it is removed
  printf '%s\n' "$db_password" > "$pwfile"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$pgdata" "$pwfile"; fi
  chmod 700 "$pgdata"
  as_pg "$bindir/initdb" -D "$pgdata" -U "$db_user" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$logs/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$logs/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
}

start_postgres() {
  local bindir="$1"
  if as_pg "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    return 0
  fi
  as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata" start >/dev/null \
    || { tail -n 20 "$pgdata/server.log" >&2; die "PostgreSQL did not start"; }
  local db
  for db in mlflow mlflow_auth; do
    if ! PGPASSFILE="$secrets/pgpass" "$bindir/psql" -h 127.0.0.1 -p "$pg_port" -U "$db_user" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      PGPASSFILE="$secrets/pgpass" "$bindir/createdb" -h 127.0.0.1 -p "$pg_port" -U "$db_user" "$db"
    fi
  done
}

write_auth_config() {
  cat > "$home/basic_auth.ini" <<EOF
[mlflow]
default_permission = $default_permission
database_uri = postgresql+psycopg2://$db_user@127.0.0.1:$pg_port/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Each request's password check is a PBKDF2 hash (about a second on a busy core); cache good
# credentials per worker for this long (a changed password is seen by other workers within it).
auth_cache_ttl_seconds = $auth_cache_ttl
EOF
}

server_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

wait_for_server() {
  "$python" - "$tracking_uri" "$1" <<'EOF'
import sys, time, urllib.error, urllib.request
uri, pid = sys.argv[1], int(sys.argv[2])
import os
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the MLflow server exited during start-up")
    try:
        urllib.request.urlopen(uri + "/health", timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers (a 401 means the auth app is in front)
    except OSError:
        time.sleep(1)
sys.exit("the MLflow server did not answer within 240 s")
EOF
}

start() {
  check_home
  mkdir -p "$logs" "$home/artifacts"
  if server_running; then echo "already running: $tracking_uri (pid $(cat "$pidfile"))"; return 0; fi
  local bindir
  bindir="$(bash "$repo/scripts/install_postgres.sh" | tail -n 1)"
  init_postgres "$bindir"
  start_postgres "$bindir"
  write_auth_config
  if [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ] && [ ! -f "$secrets/admin_password" ]; then
    (umask 077; random_secret > "$secrets/admin_password")
    echo "Generated the admin password into $secrets/admin_password"
  fi
  if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ] && [ ! -f "$secrets/flask_secret_key" ]; then
    (umask 077; random_secret > "$secrets/flask_secret_key")  # signs the auth app's CSRF tokens
  fi
  echo "Starting MLflow on $tracking_uri (backend postgresql+psycopg2://$db_user@127.0.0.1:$pg_port/mlflow, artifacts $home/artifacts)"
  # Its own session, so stop can end the server and its uvicorn workers together.
  MLFLOW_AUTH_CONFIG_PATH="$home/basic_auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$(admin_password)" \
  MLFLOW_FLASK_SERVER_SECRET_KEY="${MLFLOW_FLASK_SERVER_SECRET_KEY:-$(cat "$secrets/flask_secret_key" 2>/dev/null)}" \
  PGPASSFILE="$secrets/pgpass" \
    setsid "$python" -m mlflow server \
      --backend-store-uri "postgresql+psycopg2://$db_user@127.0.0.1:$pg_port/mlflow" \
      --artifacts-destination "$home/artifacts" \
      --host "$host" --port "$port" --workers "$workers" \
      --app-name basic-auth \
      --uvicorn-opts "--timeout-graceful-shutdown 5" \
      >"$logs/mlflow.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  wait_for_server "$(cat "$pidfile")" || { tail -n 30 "$logs/mlflow.log" >&2; stop; die "start failed (log: $logs/mlflow.log)"; }
  echo "MLflow is up: export MLFLOW_TRACKING_URI=$tracking_uri (and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
}

stop() {
  check_home
  if server_running; then
    local pid; pid="$(cat "$pidfile")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  if [ -f "$pgdata/PG_VERSION" ]; then
    local bindir; bindir="$(bash "$repo/scripts/install_postgres.sh" | tail -n 1)"
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  fi
  echo "stopped"
}

status() {
  check_home
  if server_running; then echo "running: $tracking_uri (pid $(cat "$pidfile"))"; else echo "not running"; return 1; fi
}

add_user() {
  local name="${1:-}"
  [ -n "$name" ] || die "usage: mlflow_server.sh add-user NAME (password in STREAMGUARD_USER_PASSWORD)"
  [ -n "${STREAMGUARD_USER_PASSWORD:-}" ] || die "set STREAMGUARD_USER_PASSWORD to the new user's password"
  check_home
  # The auth app's REST endpoint (what mlflow's AuthServiceClient calls), without importing mlflow.
  STREAMGUARD_ADMIN_PASSWORD="$(admin_password)" "$python" - "$tracking_uri" "$name" <<'EOF'
import base64, json, os, sys, urllib.error, urllib.request
uri, name = sys.argv[1], sys.argv[2]
token = base64.b64encode(f"admin:{os.environ['STREAMGUARD_ADMIN_PASSWORD']}".encode()).decode()
request = urllib.request.Request(
    f"{uri}/api/2.0/mlflow/users/create",
    data=json.dumps({"username": name, "password": os.environ["STREAMGUARD_USER_PASSWORD"]}).encode(),
    headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
)
try:
    with urllib.request.urlopen(request, timeout=60):
        print(f"created user {name}")
except urllib.error.HTTPError as error:
    sys.exit(f"could not create user {name}: HTTP {error.code} {error.read().decode(errors='replace')[:300]}")
EOF
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  add-user) shift; add_user "$@" ;;
  uri) echo "$tracking_uri" ;;
  *) echo "usage: $0 start|stop|status|uri|add-user NAME" >&2; exit 2 ;;
esac
