# export-worker, exportctl and export-mock-lookup on Debian 12.
#
#   docker build -t export-worker:local .
#   podman build --format docker -t export-worker:local .   (podman's default OCI
#                                   format drops HEALTHCHECK and STOPSIGNAL)
#   docker run --rm -e EXPORT_REDIS_URL=redis://redis:6379/0 \
#       -e EXPORT_SERVICE_TETHER_URL='https://tether.internal/contract/?sn={key}' export-worker:local
#
# The build stage installs only what compiling needs (scripts/install-deps.sh
# --build); the final stage has only the shared libraries, redis-cli (for the
# health check) and the three programs, and runs as the non-root uid 10001.
# The layers are ordered from the least to the most often changed, so that a
# change of the code rebuilds only the compile step and the final COPY.

FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# .dockerignore lets in only what the build reads, so that a change of the
# docs or the tests does not invalidate this layer.
COPY . .
RUN cmake -S . -B /tmp/build -DCMAKE_BUILD_TYPE=Release -DEXW_TESTS=OFF \
    && cmake --build /tmp/build -j"$(nproc)" --target export-worker exportctl export-mock-lookup \
    && cmake --install /tmp/build --prefix /opt/exw --strip

FROM debian:12-slim
# The shared libraries and redis-cli in one apt run; the user; the folder
# where workbooks are built.
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime redis-tools \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
        /tmp/install-deps.sh \
    && groupadd --system --gid 10001 exw \
    && useradd --system --uid 10001 --gid exw --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin exw \
    && mkdir -p /var/tmp/export-worker \
    && chown exw:exw /var/tmp/export-worker \
    && chmod 0700 /var/tmp/export-worker
COPY --from=build /opt/exw/bin/ /usr/local/bin/

# Workbooks are built here, in the container's writable layer (on the host's
# disk, not in RAM). There is no VOLUME: it would give every container, the
# mock lookup service's too, an anonymous volume that outlives it. Mount a
# volume here for big exports (Compose: a named volume; Kubernetes: an
# emptyDir, which a read-only root filesystem needs anyway).
ENV EXPORT_TMPDIR=/var/tmp/export-worker

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# SIGTERM lets the running job finish within EXPORT_SHUTDOWN_GRACE (default 8 s,
# inside Docker's 10 s stop timeout), else puts it back on the queue.
STOPSIGNAL SIGTERM

# Healthy when a worker process of this container has renewed its heartbeat key
# P:worker:<id> within the last EXPORT_HEARTBEAT_TTL_MS: the process is alive,
# its heartbeat thread runs, and it reaches Redis. It does not prove that the
# running job makes progress. The worker is found by EXPORT_WORKER_ID if set,
# else in P:workers by the host-name part of the default id HOSTNAME-PID-RANDOM
# (characters an id may not hold become '-', the host name is cut at 100 bytes).
# redis-cli takes redis:// URLs only, not unix://. A container built from this
# image for export-mock-lookup must disable or replace this check (the
# docker-compose.yml replaces it). With EXPORT_METRICS_ADDR set, an
# orchestrator can probe GET /healthz instead (deploy/kubernetes/). Every 10 s:
# the check is three redis-cli calls, and the heartbeat's TTL is 6 s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD c() { redis-cli --no-auth-warning -u "${EXPORT_REDIS_URL:-redis://127.0.0.1:6379/0}" "$@"; }; \
        p="${EXPORT_PREFIX:-export}"; \
        if [ -n "${EXPORT_WORKER_ID:-}" ]; then [ "$(c exists "$p:worker:$EXPORT_WORKER_ID")" = 1 ]; exit; fi; \
        h=$(tr -c 'A-Za-z0-9._:\n-' '-' </proc/sys/kernel/hostname | cut -c1-100); \
        for id in $(c smembers "$p:workers"); do \
            case $id in "$h"-*) [ "$(c exists "$p:worker:$id")" = 1 ] && exit 0 ;; esac; \
        done; \
        exit 1

ENTRYPOINT ["export-worker"]
