# Multi-stage build. cargo-chef compiles the dependencies from Cargo.toml/Cargo.lock alone, so
# that layer is reused until they change and editing src/ or migrations/ rebuilds only this crate.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
# The service builds its own libpq (pq-sys `bundled`), which needs OpenSSL's headers and pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# The migrations are compiled into the binary; the runtime image needs no SQL files or diesel CLI.
RUN cargo build --release --locked --bin students-api

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /app/target/release/students-api /usr/local/bin/students-api
COPY Rocket.toml ./
# Rocket binds to 127.0.0.1 unless told otherwise, which a container's port mapping cannot reach.
ENV ROCKET_ADDRESS=0.0.0.0
USER app
EXPOSE 8089
# The binary asks its own /ready (the database answers and has every migration this binary has),
# so the image needs no curl. The start period covers waiting for the database and migrating.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["students-api", "healthcheck"]
CMD ["students-api"]
