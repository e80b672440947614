# flowchat-drain as a container image: the slow half of FlowChat (claims
# jobs from the store, retrieves passages, calls the language model, indexes
# documents). Used by render.yaml (`runtime: docker`) and anywhere else that
# runs containers; see docs/deployment.md.
#
#   docker build -t flowchat-drain .
#   docker run --env-file .env -v flowchat-data:/data flowchat-drain                        # worker (--follow)
#   docker run --env-file .env flowchat-drain flowchat-drain --once --max-seconds 50       # one cron pass
#   docker run --env-file .env -v flowchat-data:/data flowchat-drain flowchat-drain stats  # admin
#
# The command is a whole command line (`CMD`, no `ENTRYPOINT`), so a
# platform's "command" setting means the same thing whether it replaces the
# image's CMD or its ENTRYPOINT (Render's dockerCommand, Kubernetes'
# command/args, `docker run IMAGE …`).

# --- Build -------------------------------------------------------------------
# The workspace's rust-version (Cargo.toml) on the runtime image's Debian
# release, so the binary links against the same glibc it runs with.
FROM rust:1.91-slim-bookworm AS builder
WORKDIR /src
# The whole workspace (cargo resolves every member), minus .dockerignore.
COPY . .
# The same command CI and the native Render build run. The cache mounts keep
# crates and build output between builds (BuildKit, Podman/Buildah); the
# binary is copied out in the same step because the target mount is not part
# of the image. The shared documents folder is optional: an image built
# without one starts with an empty folder (answers then come from uploads).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p flowchat-drain-bin \
    && install -D -m 0755 target/release/flowchat-drain /out/flowchat-drain \
    && mkdir -p documents

# --- Run ---------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flowchat \
    && useradd --system --uid 10001 --gid flowchat --home-dir /app --shell /usr/sbin/nologin flowchat \
    && mkdir -p /app /data \
    && chown flowchat:flowchat /data
COPY --from=builder /out/flowchat-drain /usr/local/bin/flowchat-drain
COPY --from=builder --chown=flowchat:flowchat /src/documents /app/documents
# FLOWCHAT_DATA_DIR: the sqlite index (and the sqlite store, if used) — mount
# a disk or volume here to keep it. DOCUMENTS_PATH: the folder baked into the
# image; every drain start indexes it (by content hash, so an unchanged
# folder costs one read per file). Both can be overridden at run time.
ENV FLOWCHAT_ENV=production \
    FLOWCHAT_DATA_DIR=/data \
    DOCUMENTS_PATH=/app/documents
VOLUME ["/data"]
WORKDIR /app
# Numeric, so runtimes that require a non-root user (runAsNonRoot) can check it.
USER 10001:10001
# flowchat-drain is PID 1 and handles SIGTERM itself: no claims after it, jobs
# in flight get DRAIN_SHUTDOWN_GRACE_SECONDS, then are released.
CMD ["flowchat-drain", "--follow"]
