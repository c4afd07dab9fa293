#!/usr/bin/env bash
# The Docker path, run for real: builds the project's image, runs it against a throwaway
# PostgreSQL container, then brings docker-compose.yml up, wipes it with `down -v`, and brings it
# up again. Checks what a user relies on: /students and /ready answer, `migrate status` works in
# the container, the service runs as uid 10001, the image's HEALTHCHECK turns healthy (and
# unhealthy without a database), compose re-creates and re-seeds a wiped database. Prints the
# image's size.
#
# Starts dockerd when no engine answers and root can (and stops it afterwards). Base images come
# from scripts/docker-base-images.sh: pulled, or stand-ins built from Debian's packages where no
# registry is reachable. Host networking throughout, on free ports: no test traffic leaves
# 127.0.0.1. The containers and volumes it creates are removed at the end, also on failure; the
# image stays, tagged students-api:smoke, as the build cache of the next run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

step() { printf -- '--- %s\n' "$*"; }

command -v docker >/dev/null || die "the docker CLI is missing: apt-get install docker.io"
command -v docker-compose >/dev/null || die "docker-compose is missing: apt-get install docker-compose"
command -v curl >/dev/null || die "curl is missing"

work=$(mktemp -d "${TMPDIR:-/tmp}/students-docker.XXXXXX")
# Kept between runs, so that the next build reuses its layers; the image it replaces is removed.
image=students-api:smoke
project=students-smoke-$$
containers=()
dockerd_pid=
compose=(docker-compose -p "$project" -f "$work/compose.yml")

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    for id in "${containers[@]}"; do
      echo "--- logs of container ${id:0:12}" >&2
      docker logs --tail 30 "$id" >&2 2>&1 || true
    done
    [ -z "${SMOKE_APP_PORT:-}" ] || "${compose[@]}" logs --no-color --tail 30 >&2 2>&1 || true
  fi
  [ ${#containers[@]} -eq 0 ] || docker rm -f -v "${containers[@]}" >/dev/null 2>&1 || true
  [ -z "${SMOKE_APP_PORT:-}" ] || "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls `$@` once a second until it succeeds or $1 seconds pass.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq 1 "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

health() { docker inspect -f '{{.State.Health.Status}}' "$1"; }
is_healthy() { [ "$(health "$1")" = healthy ]; }
is_unhealthy() { [ "$(health "$1")" = unhealthy ]; }

# The number of students GET /students answers with on port $1.
student_count() {
  curl -fsS "http://127.0.0.1:$1/students?limit=100" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
    die "no Docker engine answers; start one (dockerd as root), then run this again"
  fi
  step "starting dockerd"
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  wait_for 60 docker info || {
    tail -n 20 "$work/dockerd.log" >&2
    die "dockerd did not start"
  }
fi

step "base images"
scripts/docker-base-images.sh

step "docker build"
started=$SECONDS
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
docker build --network host -t "$image" . >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  die "the image did not build"
}
echo "built $image in $((SECONDS - started)) s"
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi

step "the image against a throwaway PostgreSQL"
db_port=$(free_port)
containers+=("$(docker run -d --network host -e POSTGRES_PASSWORD=smoke postgres:15 \
  -p "$db_port" -c listen_addresses=127.0.0.1)")
db=${containers[-1]}
wait_for 60 docker exec "$db" pg_isready -h 127.0.0.1 -p "$db_port" -U postgres ||
  die "PostgreSQL did not start in its container"
app_port=$(free_port)
containers+=("$(docker run -d --network host \
  -e "DATABASE_URL=postgres://postgres:smoke@127.0.0.1:$db_port/postgres" \
  -e ROCKET_ADDRESS=127.0.0.1 -e "ROCKET_PORT=$app_port" "$image")")
app=${containers[-1]}
wait_for 90 is_healthy "$app" || die "the service's HEALTHCHECK did not turn healthy: $(health "$app")"
echo "HEALTHCHECK: healthy"
[ "$(student_count "$app_port")" = 5 ] || die "GET /students did not answer the five seeded students"
echo "GET /students: 5 students"
ready=$(curl -fsS "http://127.0.0.1:$app_port/ready")
[ "$ready" = '{"status":"ready"}' ] || die "GET /ready answered $ready"
echo "GET /ready: $ready"
docker exec "$app" students-api migrate status >"$work/status.txt" || {
  cat "$work/status.txt" >&2
  die "students-api migrate status failed in the container"
}
grep -Eq '_index_student_major +applied' "$work/status.txt" ||
  die "migrate status does not show the migrations applied: $(cat "$work/status.txt")"
echo "migrate status in the container: every migration applied"
uid=$(docker exec "$app" sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' /proc/1/status)
[ "$uid" = 10001 ] || die "the service runs as uid $uid, not 10001"
echo "the service runs as uid $uid"
docker stop "$db" >/dev/null
if docker exec "$app" students-api healthcheck >"$work/check.txt" 2>&1; then
  die "healthcheck succeeded without a database"
fi
echo "without its database: $(cat "$work/check.txt")"
wait_for 60 is_unhealthy "$app" || die "the HEALTHCHECK did not turn unhealthy without a database"
echo "HEALTHCHECK: unhealthy"
docker rm -f -v "${containers[@]}" >/dev/null
containers=()

step "docker-compose up, down -v, up"
SMOKE_DB_PORT=$(free_port)
SMOKE_APP_PORT=$(free_port)
SMOKE_EDGE_PORT=$(free_port)
export SMOKE_IMAGE=$image SMOKE_DB_PORT SMOKE_APP_PORT SMOKE_EDGE_PORT
# docker-compose.yml with the override laid over it, minus the published ports: host networking
# refuses them, and an override can only add to a list (Compose v2's `!reset` is not in 1.29).
docker-compose -f docker-compose.yml -f scripts/docker/compose.smoke.yml config |
  python3 -c '
import sys, yaml
compose = yaml.safe_load(sys.stdin)
for service in compose["services"].values():
    if service.get("network_mode") == "host":
        service.pop("ports", None)
yaml.safe_dump(compose, sys.stdout)
' >"$work/compose.yml"
compose_up() {
  "${compose[@]}" up -d --no-build app db edge >"$work/compose.log" 2>&1 || {
    cat "$work/compose.log" >&2
    die "docker-compose up failed"
  }
  local id
  for service in db app; do
    id=$("${compose[@]}" ps -q "$service")
    wait_for 120 is_healthy "$id" || die "compose service $service is not healthy: $(health "$id")"
  done
  echo "app and db healthy"
  wait_for 30 curl -fsS -o /dev/null "http://127.0.0.1:$SMOKE_EDGE_PORT/ready" ||
    die "the edge does not answer /ready"
}
compose_up
[ "$(student_count "$SMOKE_APP_PORT")" = 5 ] || die "compose: GET /students did not answer 5 students"
ada='{"first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"}'
anonymous=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$SMOKE_APP_PORT/students" \
  -H 'Content-Type: application/json' -d "$ada")
[ "$anonymous" = 401 ] || die "compose: a POST without a token answered $anonymous, not 401"
# As the README says: the token is the last line `token create` prints.
token=$("${compose[@]}" exec -T app students-api token create smoke | tail -n 1)
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$SMOKE_APP_PORT/students" \
  -H 'Content-Type: application/json' -H "Authorization: Bearer $token" -d "$ada"
[ "$(student_count "$SMOKE_APP_PORT")" = 6 ] || die "compose: the POSTed student is not listed"
echo "compose: 5 seeded students; a POST without a token refused 401; 6 after a POST with one from 'compose exec app students-api token create'"
[ "$(student_count "$SMOKE_EDGE_PORT")" = 6 ] || die "compose: GET /students through the edge"
too_big=$(curl -sS -X POST "http://127.0.0.1:$SMOKE_EDGE_PORT/students" \
  -H 'Content-Type: application/json' -H 'Content-Length: 100000' --data-binary '{}' \
  -w ' %{http_code} %{content_type}' || true)
case $too_big in
  *'"detail"'*' 413 application/json') ;;
  *) die "compose: the edge did not refuse a 100 kB body with a JSON 413: $too_big" ;;
esac
echo "compose: the edge serves /students and refuses a 100 kB body with a JSON 413"
"${compose[@]}" down -v >/dev/null 2>&1
echo "compose: down -v"
compose_up
[ "$(student_count "$SMOKE_APP_PORT")" = 5 ] ||
  die "compose: after down -v and up, GET /students did not answer the five seeded students"
echo "compose: after down -v and up, the five seeded students are back"

step "image size"
size=$(docker image inspect -f '{{.Size}}' "$image")
base=debian:$(sed -n 's/^ARG DEBIAN_RELEASE=//p' Dockerfile)-slim
base_size=$(docker image inspect -f '{{.Size}}' "$base")
standin=$(docker image inspect -f '{{index .Config.Labels "org.students-api.stand-in"}}' "$base")
echo "image: $((size / 1000000)) MB, of which $base $((base_size / 1000000)) MB${standin:+ (a stand-in: $standin)}"
echo "added by the project: $(((size - base_size) / 1000000)) MB"

step "the Docker path works"
