#!/usr/bin/env bash
# Makes sure the base images that Dockerfile and docker-compose.yml name exist in the local Docker
# engine: an image already there is kept, a missing one is pulled, and where the registry cannot
# be reached a stand-in is built under the same name from Debian's packages:
#
#   debian:bookworm-slim   debootstrap --variant=minbase from the host's Debian mirror, trimmed the
#                          way the official slim image is (no manuals, docs or locales)
#   rust:1.95-bookworm     that base, the official image's build packages, and the host's own Rust
#                          toolchain (it must be the version the Dockerfile names)
#   postgres:15            that base, Debian's postgresql-15 and an entrypoint with the official
#                          image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB contract
#   haproxy:2.6            that base and Debian's haproxy, laid out as the official image is
#
# Stand-ins carry the label org.students-api.stand-in; `docker image rm` them to rebuild. Making
# the Debian base needs root (debootstrap) and network access to the mirror.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh


rust_version=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
release=$(sed -n 's/^ARG DEBIAN_RELEASE=//p' Dockerfile)
postgres_image=$(sed -n 's/^ *image: *\(postgres:.*\)$/\1/p' docker-compose.yml)
haproxy_image=$(sed -n 's/^ *image: *\(haproxy:.*\)$/\1/p' docker-compose.yml)
if [ -z "$rust_version" ] || [ -z "$release" ] || [ -z "$postgres_image" ] || [ -z "$haproxy_image" ]; then
  die "cannot read the base image names from Dockerfile and docker-compose.yml"
fi
debian_image=debian:$release-slim
rust_image=rust:$rust_version-$release

work=$(mktemp -d "${TMPDIR:-/tmp}/students-base-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }

# Succeeds when the image was pulled. An unreachable registry fails within seconds here; the
# timeout bounds a registry that answers but stalls.
pull() {
  echo "pulling $1" >&2
  timeout 600 docker pull -q "$1" >/dev/null 2>"$work/pull.log" && return 0
  echo "  cannot pull $1: $(tail -n 1 "$work/pull.log")" >&2
  return 1
}

# The host's Debian mirror (for the suites of $release), from its APT sources.
host_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

make_debian() {
  [ "$(id -u)" -eq 0 ] || die "building the $debian_image stand-in needs root (debootstrap)"
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  local mirror rootfs=$work/rootfs
  mirror=$(host_mirror)
  mirror=${mirror%/}
  echo "building a stand-in for $debian_image: debootstrap $release from $mirror" >&2
  debootstrap --variant=minbase "$release" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  }
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # What the official slim image leaves out, for the packages installed later too.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
DPKG
  # And the APT settings of the official image: no package caches or downloaded packages left
  # in a layer, compressed indexes, no translations.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' \
    >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
    -exec rm -rf {} +
  rm -rf "$rootfs"/usr/share/{man,info,groff,lintian}/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      --change "LABEL org.students-api.stand-in=\"$debian_image made by debootstrap\"" \
      - "$debian_image" >/dev/null
}

make_rust() {
  local sysroot full toolchain context=$work/rust
  command -v rustc >/dev/null || die "building the $rust_image stand-in needs Rust on the host"
  full=$(rustc --version | awk '{print $2}')
  case $full in
    "$rust_version" | "$rust_version".*) ;;
    *) die "the host's Rust is $full; the $rust_image stand-in needs $rust_version (rustup install $rust_version)" ;;
  esac
  sysroot=$(rustc --print sysroot)
  toolchain=$full-$(rustc -vV | sed -n 's/^host: //p')
  echo "building a stand-in for $rust_image from the host's Rust $full" >&2
  mkdir -p "$context/ca" "$context/rustup/toolchains" "$context/cargo/bin"
  cp /usr/local/share/ca-certificates/*.crt "$context/ca/" 2>/dev/null || true
  # Hard links where the file system allows: the toolchain is large.
  cp -al "$sysroot" "$context/rustup/toolchains/$toolchain" 2>/dev/null ||
    cp -a "$sysroot" "$context/rustup/toolchains/$toolchain"
  rm -rf "$context/rustup/toolchains/$toolchain/share/doc" \
    "$context/rustup/toolchains/$toolchain/lib/rustlib/src"
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" \
    >"$context/rustup/settings.toml"
  if command -v rustup >/dev/null; then
    cp "$(command -v rustup)" "$context/cargo/bin/rustup"
    for tool in cargo rustc rustdoc; do ln -s rustup "$context/cargo/bin/$tool"; done
  else
    for tool in cargo rustc rustdoc; do
      ln -s "/usr/local/rustup/toolchains/$toolchain/bin/$tool" "$context/cargo/bin/$tool"
    done
  fi
  cp scripts/docker/rust.Dockerfile "$context/Dockerfile"
  docker build --network host -q --build-arg "RUST_VERSION=$full" -t "$rust_image" "$context" \
    >/dev/null
}

make_postgres() {
  echo "building a stand-in for $postgres_image from Debian's postgresql-15" >&2
  docker build --network host -q -f scripts/docker/postgres.Dockerfile -t "$postgres_image" \
    scripts/docker >/dev/null
}

make_haproxy() {
  echo "building a stand-in for $haproxy_image from Debian's haproxy" >&2
  docker build --network host -q -f scripts/docker/haproxy.Dockerfile -t "$haproxy_image" \
    scripts/docker >/dev/null
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or see scripts/docker-smoke.sh)"

have "$debian_image" || pull "$debian_image" || make_debian
have "$rust_image" || pull "$rust_image" || make_rust
have "$postgres_image" || pull "$postgres_image" || make_postgres
have "$haproxy_image" || pull "$haproxy_image" || make_haproxy

for image in "$debian_image" "$rust_image" "$postgres_image" "$haproxy_image"; do
  standin=$(docker image inspect -f '{{index .Config.Labels "org.students-api.stand-in"}}' "$image")
  printf '%-22s %s\n' "$image" "${standin:+stand-in: }${standin:-pulled from the registry}"
done
