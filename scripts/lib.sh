# shellcheck shell=bash
# Shared by the scripts in this folder: failing with a message, Python tools in venvs, loopback
# ports, background processes. Source it (pg-lib.sh does); it defines functions only.

die() {
  echo "error: $*" >&2
  exit 1
}

# Stops, naming the Debian package to install, when one of these commands is missing.
require() {
  local command package
  for command in "$@"; do
    case $command in
      psql) package=postgresql-client ;;
      *) package=$command ;;
    esac
    command -v "$command" >/dev/null || die "$command is missing: sudo apt-get install $package"
  done
}

# Makes sure the venv in $1 holds $2, a pinned requirement (`package==version`) from PyPI,
# creating or updating it only when it does not.
python_tool() {
  local venv=$1 requirement=$2
  local package=${requirement%%==*} version=${requirement#*==}
  command -v python3 >/dev/null || die "python3 is needed for $package"
  # grep reads it all (no -q): stopping early would fail pip on a closed pipe, under pipefail.
  if ! "$venv/bin/pip" show "$package" 2>/dev/null | grep -x "Version: $version" >/dev/null; then
    echo "Installing $requirement into $venv" >&2
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement"
  fi
}

# Stops a background process started by the calling script, if there is one.
stop_process() {
  if [ -n "${1:-}" ]; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

# Prints a loopback port nothing listens on (another process may still take it before use).
free_port() {
  local candidate
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 30000))
    if ! port_in_use "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  die "no free loopback port found"
}

# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
