# syntax=docker/dockerfile:1
# Boxoffice image: both binaries (boxoffice-gateway, boxoffice-worker) on debian:bookworm-slim.
# docker-compose.yml builds it once as boxoffice:local and runs it as gateway, worker and seed.

# --- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY domain ./domain
COPY gateway ./gateway
COPY worker ./worker
# sqlx::migrate!() embeds migrations/ at compile time.
COPY migrations ./migrations
# Cache mounts keep the registry and target/ between builds, so a code change rebuilds only
# the workspace crates. Binaries are copied out because the cache mount is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin boxoffice-gateway --bin boxoffice-worker \
 && mkdir -p /out \
 && cp target/release/boxoffice-gateway target/release/boxoffice-worker /out/

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates for the webhook notifier over TLS; curl for container health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin boxoffice
COPY --from=builder /out/boxoffice-gateway /out/boxoffice-worker /usr/local/bin/
USER boxoffice
# Containers listen on all interfaces; the compose network, not the bind address, isolates them.
ENV BOXOFFICE_HTTP_ADDR=0.0.0.0:9001 \
    BOXOFFICE_ADMIN_ADDR=0.0.0.0:9101 \
    BOXOFFICE_LOG_FORMAT=json
EXPOSE 9001 9101
CMD ["boxoffice-gateway"]
