# Stand-in for rust:<version>-bookworm, made by scripts/docker-base-images.sh when that image cannot
# be pulled: the local debian:bookworm-slim plus what the official image's build needs, and the
# host's own Rust toolchain laid out the way the official image lays it out (rustup under
# /usr/local/rustup, cargo's home under /usr/local/cargo, both on PATH).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libpq-dev libssl-dev \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Certificate authorities the host trusts beyond Debian's (a proxy that re-signs TLS, say): without
# them cargo inside a build could not reach crates.io from such a host.
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
COPY rustup/ /usr/local/rustup/
COPY cargo/ /usr/local/cargo/
ARG RUST_VERSION
ENV RUST_VERSION=${RUST_VERSION}
RUN rustc --version && cargo --version
LABEL org.students-api.stand-in="rust built from debian:bookworm-slim and the host's toolchain"
