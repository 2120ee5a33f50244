# export-worker and export-mock-lookup on Debian 12.
#
#   docker build -t export-worker .
#   docker run --rm -e EXPORT_REDIS_URL=redis://redis:6379/0 \
#       -e EXPORT_SERVICE_TETHER_URL='https://tether.internal/contract/?sn={key}' export-worker
#
# The build stage installs the build dependencies with the same script the
# tests use; the final stage has only the shared libraries, redis-cli (for the
# health check) and the two programs, and runs as the non-root user exw.

FROM debian:12-slim AS build
WORKDIR /src
# The dependencies first, so that this layer is reused while only the code changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /tmp/build -DCMAKE_BUILD_TYPE=Release -DEXW_TESTS=OFF \
    && cmake --build /tmp/build -j"$(nproc)" \
    && cmake --install /tmp/build --prefix /usr/local

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-tools \
    && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /usr/local/bin/export-worker /usr/local/bin/export-mock-lookup /usr/local/bin/

RUN groupadd --system --gid 10001 exw \
    && useradd --system --uid 10001 --gid exw --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin exw \
    && mkdir -p /var/tmp/export-worker \
    && chown exw:exw /var/tmp/export-worker \
    && chmod 0700 /var/tmp/export-worker

# Workbooks are built here: a volume, so that they go to the host's disk and
# not to the container's writable layer or a tmpfs.
ENV EXPORT_TMPDIR=/var/tmp/export-worker
VOLUME ["/var/tmp/export-worker"]

USER exw

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
# image for export-mock-lookup must disable or replace this check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD c() { redis-cli --no-auth-warning -u "${EXPORT_REDIS_URL:-redis://127.0.0.1:6379/0}" "$@"; }; \
        p="${EXPORT_PREFIX:-export}"; \
        if [ -n "${EXPORT_WORKER_ID:-}" ]; then [ "$(c exists "$p:worker:$EXPORT_WORKER_ID")" = 1 ]; exit; fi; \
        h=$(tr -c 'A-Za-z0-9._:\n-' '-' </proc/sys/kernel/hostname | cut -c1-100); \
        for id in $(c smembers "$p:workers"); do \
            case $id in "$h"-*) [ "$(c exists "$p:worker:$id")" = 1 ] && exit 0 ;; esac; \
        done; \
        exit 1

ENTRYPOINT ["export-worker"]
