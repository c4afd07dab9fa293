#!/usr/bin/env bash
# The project's own PostgreSQL for development: a cluster under .pgdata/ (git-ignored) on
# 127.0.0.1:5439 with role user1/password1 and database database1, the same address and
# credentials docker-compose publishes, so Rocket.toml, .env and the diesel CLI need no change.
#
#   scripts/db.sh start    create on first use, start if stopped (default)
#   scripts/db.sh stop
#   scripts/db.sh status
#   scripts/db.sh destroy  stop and delete .pgdata/
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

PGDATA_DIR=${PGDATA_DIR:-$root/.pgdata}
PORT=5439
DB_USER=user1
DB_PASSWORD=password1
DB_NAME=database1
URL="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"

pg_find_bin
pg_pick_user

running() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] && pg_as_user "$PG_BIN/pg_ctl" --pgdata="$PGDATA_DIR" status >/dev/null 2>&1
}

start() {
  if running; then
    echo "PostgreSQL from $PGDATA_DIR is running at $URL" >&2
    return
  fi
  if port_in_use "$PORT"; then
    # Most likely `docker compose up db`, which serves the same credentials.
    echo "Something already listens on 127.0.0.1:$PORT; using it as $URL" >&2
    return
  fi
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    echo "Creating a PostgreSQL cluster in $PGDATA_DIR (runs as $PG_USER)" >&2
    pg_prepare_dir "$PGDATA_DIR"
    pg_init_cluster "$PGDATA_DIR" "$DB_USER" "$DB_PASSWORD"
    pg_start_cluster "$PGDATA_DIR" "$PORT" || { pg_log_tail "$PGDATA_DIR"; die "PostgreSQL did not start"; }
    PGPASSWORD=$DB_PASSWORD "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" "$DB_NAME"
  else
    pg_start_cluster "$PGDATA_DIR" "$PORT" || { pg_log_tail "$PGDATA_DIR"; die "PostgreSQL did not start"; }
  fi
  echo "PostgreSQL from $PGDATA_DIR is running at $URL" >&2
}

case "${1:-start}" in
  start) start ;;
  stop)
    if running; then
      pg_stop_cluster "$PGDATA_DIR"
      echo "stopped the PostgreSQL in $PGDATA_DIR" >&2
    else
      echo "no PostgreSQL runs in $PGDATA_DIR" >&2
    fi
    ;;
  status) if running; then echo "running at $URL"; else echo "stopped"; exit 3; fi ;;
  destroy)
    if running; then pg_stop_cluster "$PGDATA_DIR"; fi
    rm -rf "$PGDATA_DIR"
    ;;
  *) die "usage: $0 [start|stop|status|destroy]" ;;
esac
