# shellcheck shell=bash
# Shared by the scripts in this folder: find PostgreSQL's server binaries and run a cluster as an
# unprivileged user (PostgreSQL refuses to run as root). Source it; it defines functions only,
# and sources lib.sh for the rest.
#
# PG_ROOT: a Debian 13 root holding postgresql-17 (scripts/debian13-root.sh), whose server runs
# instead of this machine's, through chroot as the root's own postgres account. Its clusters must
# then live inside the root; the functions take this machine's paths and translate them.

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# $1, a path of this machine inside PG_ROOT, as the commands run in the root see it.
pg_in() {
  echo "${1#"${PG_ROOT:-}"}"
}

# Sets PG_BIN to the folder holding initdb and pg_ctl (inside PG_ROOT when it is set).
pg_find_bin() {
  local candidate
  if [ -n "${PG_ROOT:-}" ]; then
    for candidate in "$PG_ROOT"/usr/lib/postgresql/*/bin; do
      [ -x "$candidate/initdb" ] && PG_BIN=$(pg_in "$candidate")
    done
    [ -n "${PG_BIN:-}" ] || die "no PostgreSQL server in $PG_ROOT: run scripts/debian13-root.sh"
    [ "$(id -u)" -eq 0 ] || die "PG_ROOT needs root (chroot)"
    return 0
  fi
  for candidate in \
    "${PG_BIN:-}" \
    "$(pg_config --bindir 2>/dev/null || true)" \
    /usr/lib/postgresql/*/bin \
    "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"; do
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      PG_BIN=$candidate
      return 0
    fi
  done
  die "PostgreSQL server binaries (initdb, pg_ctl) not found.
  On Debian/Ubuntu: sudo apt-get install postgresql   (or postgresql-15)
  Elsewhere, set PG_BIN to the folder that holds initdb and pg_ctl."
}

# Sets PG_USER: who runs the server. Ourselves, unless we are root; then PG_RUN_AS, the
# `postgres` account the Debian packages create, or `nobody`.
pg_pick_user() {
  if [ -n "${PG_ROOT:-}" ]; then
    # The root's own account, whose ids differ from this machine's.
    PG_USER=$(chroot "$PG_ROOT" id -u postgres):$(chroot "$PG_ROOT" id -g postgres)
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    PG_USER=$(id -un)
  elif [ -n "${PG_RUN_AS:-}" ]; then
    PG_USER=$PG_RUN_AS
  elif id postgres >/dev/null 2>&1; then
    PG_USER=postgres
  else
    PG_USER=nobody
  fi
}

# Runs a command as PG_USER (in PG_ROOT, when it is set: paths then as pg_in gives them).
pg_as_user() {
  if [ -n "${PG_ROOT:-}" ]; then
    chroot --userspec="$PG_USER" "$PG_ROOT" "$@"
  elif [ "$(id -u)" -eq 0 ] && [ "$PG_USER" != root ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$PG_USER" -- "$@"
    else
      su -s /bin/sh "$PG_USER" -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

# Creates the folder $1 for a cluster owned by PG_USER, or fails saying why PG_USER can't reach it.
pg_prepare_dir() {
  local dir=$1
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$PG_USER" "$dir"
  fi
  chmod 700 "$dir"
  pg_as_user test -w "$(pg_in "$dir")" ||
    die "$PG_USER cannot write to $dir (a parent folder is closed to it, as /root is).
  Clone the project somewhere $PG_USER can reach, or set PG_RUN_AS to another account."
}

# initdb $1 with a superuser $2 whose password is $3, reachable over TCP on loopback only.
pg_init_cluster() {
  local dir=$1 user=$2 password=$3 pwfile
  pwfile=$(mktemp "${PG_ROOT:+$PG_ROOT/tmp/}pwfile.XXXXXX")
  printf '%s\n' "$password" >"$pwfile"
  chmod 644 "$pwfile"
  pg_as_user "$PG_BIN/initdb" --pgdata="$(pg_in "$dir")" --username="$user" --pwfile="$(pg_in "$pwfile")" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || {
    rm -f "$pwfile"
    cat "$dir.initdb.log" >&2
    die "initdb failed in $dir"
  }
  rm -f "$pwfile" "$dir.initdb.log"
}

# Starts the cluster in $1 on 127.0.0.1:$2, logging to $1/server.log, and waits until it accepts
# connections; fails (without exiting) when it does not start, so callers can try another port.
# No Unix socket: its default folder is not writable by ordinary users.
pg_start_cluster() {
  local dir=$1 port=$2
  pg_as_user "$PG_BIN/pg_ctl" --pgdata="$(pg_in "$dir")" --log="$(pg_in "$dir")/server.log" --wait --timeout=60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=''" \
    start >/dev/null
}

# Starts the cluster in $1 on a free loopback port, which it sets in PG_PORT. Another process can
# take a port between the check and the start, so it retries on others; it dies if none works.
pg_start_on_free_port() {
  local dir=$1
  for _ in $(seq 1 20); do
    PG_PORT=$(free_port)
    if pg_start_cluster "$dir" "$PG_PORT"; then
      return 0
    fi
  done
  pg_log_tail "$dir"
  die "could not start PostgreSQL from $dir"
}

# The URL of database $2 on the server of URL $1 (same role, host, port and parameters).
pg_database_url() {
  local base=${1%%\?*}
  echo "${base%/*}/$2${1#"$base"}"
}

# Splits a postgres://user:password@host:port/database?params URL into PG_URL_USER,
# PG_URL_PASSWORD, PG_URL_HOST, PG_URL_PORT (5432 when absent) and PG_URL_PATH (database and
# parameters).
# shellcheck disable=SC2034 # set for the caller
pg_parse_url() {
  local rest=${1#*://} credentials address
  credentials=${rest%%@*}
  PG_URL_USER=${credentials%%:*}
  PG_URL_PASSWORD=${credentials#*:}
  [ "$PG_URL_PASSWORD" != "$credentials" ] || PG_URL_PASSWORD=
  address=${rest#*@}
  address=${address%%/*}
  PG_URL_HOST=${address%%:*}
  PG_URL_PORT=${address##*:}
  [ "$PG_URL_PORT" != "$address" ] || PG_URL_PORT=5432
  PG_URL_PATH=${rest#*/}
}

# The end of a cluster's log, for error messages.
pg_log_tail() {
  tail -n 20 "$1/server.log" >&2 2>/dev/null || true
}

pg_stop_cluster() {
  local dir=$1 mode=${2:-fast}
  pg_as_user "$PG_BIN/pg_ctl" --pgdata="$(pg_in "$dir")" --mode="$mode" --wait stop >/dev/null 2>&1
}

# Starts target/debug/students-api (built first) on a new database named $1 on the server
# DATABASE_URL names, on a free loopback port, and waits until /ready answers. Sets
# service_port, service_db_url and service_token (a token of scope students, named $1).
# Installs an EXIT trap that stops the service and drops the database.
service_on_own_database() {
  : "${DATABASE_URL:?set DATABASE_URL to a server where this role may create databases}"
  service_name=$1
  service_admin_url=$DATABASE_URL
  cargo build --locked --quiet --bin students-api
  service_pid=
  trap service_cleanup EXIT
  service_admin "CREATE DATABASE $service_name"
  service_port=$(free_port)
  service_db_url=$(pg_database_url "$service_admin_url" "$service_name")
  DATABASE_URL=$service_db_url ROCKET_PORT=$service_port ROCKET_ADDRESS=127.0.0.1 \
    ROCKET_LOG_LEVEL=critical target/debug/students-api &
  service_pid=$!
  # The service migrates before it listens; /ready also proves nothing is pending.
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$service_port/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$service_pid" 2>/dev/null || die "the service exited before it was ready"
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$service_port/ready" >/dev/null ||
    die "the service did not become ready"
  # shellcheck disable=SC2034 # for the caller
  service_token=$(DATABASE_URL=$service_db_url target/debug/students-api token create \
    "$service_name" | tail -n 1)
}

service_admin() {
  psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$service_admin_url" -c "$1" >/dev/null
}

service_cleanup() {
  local status=$?
  stop_process "$service_pid"
  service_admin "DROP DATABASE IF EXISTS $service_name WITH (FORCE)" || true
  exit "$status"
}
