# syntax=docker/dockerfile:1
# Container image of the asynclab service: a release build in a Rust builder stage, run as a
# non-root user on a slim Debian base. Needs BuildKit (the default builder of current Docker).
#
# Run it with ASYNCLAB_TOKEN set: the service refuses to listen on 0.0.0.0 without a token.
# Jobs are kept in PostgreSQL when DATABASE_URL is set, otherwise in a SQLite file in
# /var/lib/asynclab (mount a volume there). compose.yaml beside this file runs it with PostgreSQL.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
# aws-lc-sys (rustls' crypto, pulled in by sqlx) compiles C and assembly with the cc crate:
# a C/C++ toolchain and make are enough on x86_64 and aarch64 Linux, whose bindings ship
# pregenerated, so neither cmake nor clang is needed. Packages follow the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config gcc g++ make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY . .
# The registry and the target directory live in BuildKit caches, so a rebuild after a source
# change recompiles only this crate. The cached target directory is not part of the image:
# the binary is copied out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked \
    && install -D -m 0755 target/release/asynclab /out/asynclab

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates for TLS to the database, curl for the health check.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 asynclab \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/asynclab --no-create-home \
       --shell /usr/sbin/nologin asynclab \
    && install -d -o asynclab -g asynclab -m 0750 /var/lib/asynclab
COPY --from=builder /out/asynclab /usr/local/bin/asynclab
WORKDIR /var/lib/asynclab
USER 10001:10001
ENV ASYNCLAB_DATA_DIR=/var/lib/asynclab \
    ASYNCLAB_BIND=0.0.0.0:8080
EXPOSE 8080
# /healthz needs no token; it says the process is up (/readyz also checks the database).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
# SIGTERM starts the graceful shutdown: running jobs are recorded as interrupted.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/asynclab"]
CMD ["serve"]
