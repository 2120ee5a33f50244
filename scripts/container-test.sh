#!/usr/bin/env bash
# container-test.sh: builds the images and runs docker-compose.yml for real.
#
#   scripts/container-test.sh           install what is missing, build, test, clean up
#   scripts/container-test.sh --purge   the same, then delete the image cache too
#   scripts/container-test.sh --rebuild-base   make the Debian base image afresh
#   scripts/container-test.sh --first-job-runs N [--compose-file FILE]
#       then N more times: a job queued, up, the job timed, down; with the
#       lookup retries of each and their reasons (the workers log at debug)
#
# Runs as root on Debian 12, with no Docker engine and no registry: Debian's
# podman (runc, cgroupfs, netavark) serves the Docker API through "podman
# system service", and Debian's docker-compose 1.29 drives it through
# DOCKER_HOST. The base image (the Dockerfile's debian:12-slim) is made with
# debootstrap --variant=minbase from the machine's Debian mirror and podman
# import; Redis 7 is an image of Debian's redis-server on that base. Then:
#
#   - the worker image is built (--format docker, which keeps HEALTHCHECK),
#     checked for its size (under 120 MB), its user (uid 10001) and its check;
#     the optional TLS tunnel's image (deploy/stunnel) is built and run once;
#   - the compose file is brought up with 3 workers; jobs pushed with
#     exportctl inside a worker container must spread over all 3 and succeed,
#     the first one as fast as the others;
#   - a worker frozen with SIGSTOP must turn unhealthy, and healthy again
#     after SIGCONT;
#   - a worker stopped with SIGTERM during a long job must exit 0 within the
#     stop timeout, the job go back on the queue and another worker finish it;
#   - "down -v" must leave no container, volume or network behind.
#
# Nothing global changes: podman reads a private CONTAINERS_CONF and storage
# configuration; its images are kept in the cache folder EXW_CT_CACHE
# (default /var/cache/export-worker-container-test) so that a second run is
# quick; net.ipv4.ip_forward (which netavark turns on) and netavark's iptables
# chains are put back as they were. Every process started is stopped by pid.
# podman runs health checks through systemd timers; there is no systemd here,
# so a loop of this script runs "podman healthcheck run" at each container's
# interval. Ends with a summary and "container-test: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0"
}

purge=0
rebuild_base=0
first_job_runs=0
compose_file=$root/docker-compose.yml
while [[ $# -gt 0 ]]; do
    case $1 in
    --purge) purge=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --first-job-runs)
        first_job_runs=${2:?--first-job-runs takes a number}
        shift
        ;;
    --compose-file)
        compose_file=$(realpath "${2:?--compose-file takes a file}")
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "container-test.sh: unknown option: $1" >&2
        usage >&2
        exit 64
        ;;
    esac
    shift
done

if [[ $(id -u) -ne 0 ]]; then
    echo "container-test.sh: podman must run as root here; run it as root" >&2
    exit 1
fi

t_start=$SECONDS
log() { printf '==> [container] %s\n' "$*"; }
passed=0
failed=0
failures=()
pass() {
    passed=$((passed + 1))
    log "ok: $*"
}
fail() {
    failed=$((failed + 1))
    failures+=("$*")
    log "FAILED: $*" >&2
}
# Elapsed seconds since $1 (a value of $EPOCHREALTIME), to 0.1 s.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# --- packages ------------------------------------------------------------------
need=(podman runc netavark aardvark-dns iptables docker-compose debootstrap python3 ca-certificates)
missing=()
for p in "${need[@]}"; do
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- private podman configuration ---------------------------------------------
cache=${EXW_CT_CACHE:-/var/cache/export-worker-container-test}
run=$(mktemp -d /tmp/exw-container-test.XXXXXX)
# podman records its run and temporary folders in the storage's database on
# first use and insists on them afterwards: they cannot change between runs.
# Under /run, a tmpfs, they go at the next boot anyway.
state=/run/export-worker-container-test
mkdir -p "$cache" "$run/networks" "$state/libpod" "$state/runroot"
cat >"$run/containers.conf" <<EOF
[containers]
# The defaults fail here with "setrlimit ... Operation not permitted".
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
# crun fails with "cgroups in hybrid mode not supported"; no systemd here.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$run/events.log"
tmp_dir = "$state/libpod"

[network]
network_backend = "netavark"
network_config_dir = "$run/networks"
EOF
cat >"$run/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$state/runroot"
EOF
export CONTAINERS_CONF=$run/containers.conf
export CONTAINERS_STORAGE_CONF=$run/storage.conf
sock=$run/podman.sock
project=exwct
compose=(docker-compose -p "$project" -f "$root/docker-compose.yml")
# The --first-job-runs cycles: the compose file asked for, workers at debug level.
compose_x=(docker-compose -p "$project" -f "$compose_file" -f "$run/debug.yml")
cat >"$run/debug.yml" <<'EOF'
services:
  worker:
    environment:
      EXPORT_LOG_LEVEL: "debug"
EOF
# A free loopback port for Redis's published port: 6379 may be taken.
redis_host_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export EXPORT_REDIS_HOST_PORT=$redis_host_port

ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
netavark_chains_before=$( (iptables-save 2>/dev/null; ip6tables-save 2>/dev/null) | grep -c '^:NETAVARK' || true)
service_pid=
health_pid=
compose_up=0
compose_cmd=("${compose[@]}")

# Removes the rules and chains netavark leaves in iptables once its last
# network is gone, when there were none before this script.
netavark_iptables_cleanup() {
    local cmd t rule ch
    for cmd in iptables ip6tables; do
        command -v "$cmd-save" >/dev/null || continue
        for t in filter nat mangle; do
            "$cmd-save" -t "$t" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j NETAVARK' |
                sed 's/^-A /-D /' | while read -r rule; do
                eval "$cmd -t $t $rule" 2>/dev/null || true
            done
            for ch in $("$cmd-save" -t "$t" 2>/dev/null | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
                "$cmd" -t "$t" -F "$ch" 2>/dev/null || true
            done
            for ch in $("$cmd-save" -t "$t" 2>/dev/null | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
                "$cmd" -t "$t" -X "$ch" 2>/dev/null || true
            done
        done
    done
}

# SIGTERM to a child of this script, SIGKILL if it is still there after 10 s.
stop_pid() {
    local pid=$1 st
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        st=$(ps -o stat= -p "$pid" 2>/dev/null || true)
        [[ -z $st || $st == Z* ]] && break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

project_leftovers() {
    podman ps -a -q --filter "label=com.docker.compose.project=$project" 2>/dev/null
    podman volume ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null
    podman network ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null
}

remove_project() {
    local ids
    ids=$(podman ps -a -q --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
    [[ -z $ids ]] || podman rm -f -t 0 $ids >/dev/null 2>&1 || true
    ids=$(podman volume ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
    [[ -z $ids ]] || podman volume rm -f $ids >/dev/null 2>&1 || true
    ids=$(podman network ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
    [[ -z $ids ]] || podman network rm -f $ids >/dev/null 2>&1 || true
}

cleanup() {
    local rc=$?
    set +e
    if [[ $compose_up -eq 1 ]]; then
        DOCKER_HOST=unix://$sock timeout 120 "${compose_cmd[@]}" down -v --remove-orphans \
            >/dev/null 2>&1
    fi
    remove_project
    stop_pid "$health_pid"
    stop_pid "$service_pid"
    # podman exec leaves a conmon behind each exec session for up to 5 min
    # (--exit-delay 300); those of this run's containers are stopped by pid.
    ps -eo pid=,comm=,args= | awk -v s="$cache/storage/" '$2 == "conmon" && index($0, s) { print $1 }' |
        while read -r pid; do kill "$pid" 2>/dev/null; done
    # Overlay mounts of containers that are gone (there should be none).
    findmnt -rn -o TARGET | grep -F "$cache/storage/" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null
    done
    echo "$ip_forward_before" >/proc/sys/net/ipv4/ip_forward
    if [[ $netavark_chains_before -eq 0 ]]; then
        netavark_iptables_cleanup
    fi
    rm -rf "$run"
    findmnt -rn -o TARGET | grep -qF "$state/" || rm -rf "$state"
    if [[ $purge -eq 1 ]]; then
        findmnt -rn -o TARGET | grep -F "$cache/" | sort -r | xargs -r -n1 umount 2>/dev/null
        rm -rf "$cache"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "container-test.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# --- the base image: debootstrap --variant=minbase, podman import --------------
# The machine's Debian mirror and security mirror, from its apt sources.
apt_uri() {
    local suite=$1
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | awk -v suite="$suite" '
        /^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) break
                      if ($(i + 1) == suite) { print $i; exit } }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
        /^$/ { uri = "" }'
}
mirror=$(apt_uri bookworm || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(apt_uri bookworm-security || true)

base_tar=$cache/debian-bookworm-minbase.tar
t_base=$EPOCHREALTIME
base_made=no
if [[ $rebuild_base -eq 1 || ! -s $base_tar ]]; then
    log "debootstrap --variant=minbase bookworm from $mirror"
    rootfs=$run/rootfs
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$run/debootstrap.log" 2>&1 || {
        tail -20 "$run/debootstrap.log" >&2
        exit 1
    }
    {
        echo "deb $mirror bookworm main"
        echo "deb $mirror bookworm-updates main"
        [[ -z $security ]] || echo "deb $security bookworm-security main"
    } >"$rootfs/etc/apt/sources.list"
    # Slim, as debian:12-slim is: no documentation or translations, now or
    # from packages installed later, and no apt caches.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/01-no-recommends"
    find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/log/{apt,dpkg.log,bootstrap.log} "$rootfs"/etc/machine-id
    tar -C "$rootfs" --numeric-owner -cf "$base_tar.new" .
    mv "$base_tar.new" "$base_tar"
    rm -rf "$rootfs"
    base_made=yes
fi
if [[ $base_made == yes ]] || ! podman image exists docker.io/library/debian:12-slim; then
    podman import --change 'CMD ["bash"]' "$base_tar" docker.io/library/debian:12-slim >/dev/null
fi
base_s=$(since "$t_base")
base_mb=$(podman image inspect docker.io/library/debian:12-slim --format '{{.Size}}' |
    awk '{ printf "%.1f", $1 / 1e6 }')
log "base image debian:12-slim: ${base_mb} MB (made: $base_made) in ${base_s} s"

# --- images ------------------------------------------------------------------
mkdir -p "$run/redis-image"
cat >"$run/redis-image/Containerfile" <<'EOF'
FROM docker.io/library/debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /data && chown redis:redis /data \
    && printf '#!/bin/sh\nif [ "${1:-}" = redis-server ]; then shift; exec redis-server "$@" --protected-mode no; fi\nexec "$@"\n' >/usr/local/bin/redis-entrypoint \
    && chmod 0755 /usr/local/bin/redis-entrypoint
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint"]
CMD ["redis-server"]
EOF
t=$EPOCHREALTIME
podman build --format docker --pull=never -q -t docker.io/library/redis:7 "$run/redis-image" \
    >"$run/redis-build.log" 2>&1 || {
    tail -20 "$run/redis-build.log" >&2
    exit 1
}
redis_build_s=$(since "$t")

log "podman build --format docker -t export-worker:local ."
t=$EPOCHREALTIME
if podman build --format docker --pull=never -t localhost/export-worker:local "$root" \
    >"$run/build.log" 2>&1; then
    build_s=$(since "$t")
    cached=$(grep -c -- '--> Using cache' "$run/build.log" || true)
    steps=$(grep -c 'STEP [0-9]' "$run/build.log" || true)
    pass "worker image built in ${build_s} s ($cached of $steps steps from the cache)"
else
    tail -40 "$run/build.log" >&2
    fail "podman build"
    exit 1
fi
image_bytes=$(podman image inspect localhost/export-worker:local --format '{{.Size}}')
image_mb=$(awk -v b="$image_bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
if [[ $image_bytes -lt 120000000 ]]; then
    pass "image size ${image_mb} MB (limit 120 MB)"
else
    fail "image size ${image_mb} MB, over 120 MB"
fi
img_user=$(podman image inspect localhost/export-worker:local --format '{{.Config.User}}')
img_check=$(podman image inspect localhost/export-worker:local \
    --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Interval}}{{end}}')
img_stop=$(podman image inspect localhost/export-worker:local --format '{{.Config.StopSignal}}')
ctl_ok=$(podman run --rm --network none --entrypoint exportctl localhost/export-worker:local \
    --help 2>/dev/null | grep -c '^ *queue' || true)
if [[ ${img_user%%:*} == 10001 && -n $img_check && $img_stop == SIGTERM && $ctl_ok -ge 1 ]]; then
    pass "image: user $img_user, HEALTHCHECK every $img_check, STOPSIGNAL $img_stop, exportctl inside"
else
    fail "image: user '$img_user', HEALTHCHECK '$img_check', STOPSIGNAL '$img_stop', exportctl $ctl_ok"
fi

# The optional TLS tunnel's image (docker-compose.yml's "tls" profile).
t=$EPOCHREALTIME
if podman build --format docker --pull=never -t localhost/export-worker-stunnel:local \
    "$root/deploy/stunnel" >"$run/stunnel-build.log" 2>&1; then
    stunnel_s=$(since "$t")
    stunnel_mb=$(podman image inspect localhost/export-worker-stunnel:local --format '{{.Size}}' |
        awk '{ printf "%.1f", $1 / 1e6 }')
    sv=$(podman run --rm --network none --entrypoint stunnel localhost/export-worker-stunnel:local \
        -version 2>&1 | grep -o 'stunnel [0-9.]*' | head -1 || true)
    if [[ -n $sv ]]; then
        pass "TLS tunnel image: $sv, ${stunnel_mb} MB, built in ${stunnel_s} s"
    else
        fail "the TLS tunnel image does not run stunnel"
    fi
else
    tail -20 "$run/stunnel-build.log" >&2
    fail "podman build deploy/stunnel"
fi

# --- the Docker API and the health-check loop ---------------------------------
podman system service --time=0 "unix://$sock" >"$run/service.log" 2>&1 &
service_pid=$!
disown "$service_pid" # stopped by pid in cleanup, without a job notice
for _ in $(seq 100); do
    [[ -S $sock ]] && podman --url "unix://$sock" version >/dev/null 2>&1 && break
    sleep 0.1
done
export DOCKER_HOST=unix://$sock

# Runs "podman healthcheck run" for each running container that has a check,
# first when it is seen and then every interval of its own. podman does not
# enforce a check's timeout, so the loop does (a check that overruns counts
# for nothing).
health_loop() {
    set +e
    # Ends after the check or sleep in progress, so that no child outlives it.
    trap 'exit 0' TERM
    declare -A next every limit
    local id now line secs tmo
    while :; do
        now=${EPOCHREALTIME/./}
        now=$((now / 1000))
        for id in $(podman ps -q --no-trunc 2>/dev/null); do
            if [[ -z ${every[$id]+x} ]]; then
                line=$(podman inspect "$id" --format \
                    '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Interval.Seconds}} {{.Config.Healthcheck.Timeout.Seconds}}{{end}}' \
                    2>/dev/null || true)
                read -r secs tmo <<<"$line"
                every[$id]=$(awk -v s="${secs:-0}" 'BEGIN { printf "%d", s * 1000 }')
                limit[$id]=$(awk -v s="${tmo:-30}" 'BEGIN { printf "%d", s + 2 }')
                next[$id]=$now
            fi
            [[ ${every[$id]} -gt 0 && $now -ge ${next[$id]} ]] || continue
            next[$id]=$((now + every[$id]))
            timeout "${limit[$id]}" podman healthcheck run "$id" >/dev/null 2>&1 || true
        done
        sleep 0.25
    done
}
health_loop >>"$run/health.log" 2>&1 &
health_pid=$!
disown "$health_pid"

# --- compose up --------------------------------------------------------------
remove_project # whatever a killed earlier run left
log "docker-compose up -d --scale worker=3"
t=$EPOCHREALTIME
compose_up=1
compose_cmd=("${compose[@]}")
if timeout 300 "${compose[@]}" up -d --no-build --scale worker=3 >"$run/up.log" 2>&1; then
    up_s=$(since "$t")
    pass "compose up with 3 workers in ${up_s} s (each waits for Redis and the lookup service to be healthy)"
else
    cat "$run/up.log" >&2
    fail "docker-compose up"
    exit 1
fi

cid() { # the container of service $1, number $2
    podman ps -q --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.service=$1" \
        --filter "label=com.docker.compose.container-number=${2:-1}"
}
redis_c=$(cid redis)
workers=()
for i in 1 2 3; do workers+=("$(cid worker "$i")"); done
health() { podman inspect "$1" --format '{{.State.Health.Status}}' 2>/dev/null; }
wait_health() { # container, status, seconds: prints the time it took, fails after
    local t0=$EPOCHREALTIME end=$((SECONDS + $3))
    while [[ $SECONDS -lt $end ]]; do
        if [[ $(health "$1") == "$2" ]]; then
            since "$t0"
            return 0
        fi
        sleep 0.5
    done
    return 1
}
rcli() { podman exec -i "$redis_c" redis-cli --no-auth-warning "$@"; }
ctl() { timeout 60 "${compose_cmd[@]}" exec -T --index="${CTL_INDEX:-1}" worker exportctl "$@"; }

all_healthy=1
for c in "${workers[@]}"; do
    wait_health "$c" healthy 60 >/dev/null || all_healthy=0
done
if [[ $all_healthy -eq 1 && ${#workers[@]} -eq 3 ]]; then
    pass "3 workers healthy"
else
    fail "workers not all healthy: $(for c in "${workers[@]}"; do printf '%s ' "$(health "$c")"; done)"
fi

# --- non-root --------------------------------------------------------------------
uids=$(for c in "${workers[@]}"; do podman exec "$c" sh -c 'awk "/^Uid:/ { print \$2 }" /proc/1/status'; done | sort -u | tr '\n' ' ')
if [[ $uids == "10001 " ]]; then
    pass "every worker process runs as uid 10001"
else
    fail "worker processes run as uid(s) $uids"
fi

# --- jobs --------------------------------------------------------------------
# A job with ROWS distinct keys looked up in the mock (500 ms each, 32 threads).
job_doc() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
jid, rows = sys.argv[1], int(sys.argv[2])
print(json.dumps({
    "id": jid,
    "lookup": {"service": "tether", "key": "sn"},
    "columns": [{"header": "Contract SN", "field": "sn"},
                {"header": "Customer", "lookup": "/name"},
                {"header": "Discount share", "lookup": "/discount/ratio",
                 "type": "number", "format": "0.00%"}],
    "rows": [{"sn": "%s-%05d" % (jid, i)} for i in range(rows)],
}))
EOF
}
enqueue() { # id rows [worker index]
    job_doc "$1" "$2" | CTL_INDEX=${3:-1} ctl enqueue - >/dev/null
}
field() { rcli HGET "export:job:$1" "$2" | tr -d '\r'; }
wait_state() { # id, states regex, seconds
    local end=$((SECONDS + $3)) s
    while [[ $SECONDS -lt $end ]]; do
        s=$(field "$1" state)
        if [[ $s =~ ^($2)$ ]]; then
            echo "$s"
            return 0
        fi
        sleep 0.2
    done
    field "$1" state
    return 1
}
ms_between() { awk -v a="$(field "$1" "$2")" -v b="$(field "$1" "$3")" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }

# The first job after up: 100 keys at 500 ms on 32 threads take 2 s.
enqueue first-1 100
st=$(wait_state first-1 'succeeded|failed|cancelled' 90) || true
first_total=$(ms_between first-1 queued_at finished_at)
first_run=$(ms_between first-1 started_at finished_at)
first_retries=$(($(rcli HGET export:stats lookup_requests | tr -d '\r') - 100))
if [[ $st == succeeded ]] && awk -v t="$first_run" 'BEGIN { exit !(t < 4) }'; then
    pass "first job after up: ${first_total} s from enqueue to succeeded, ${first_run} s running, $first_retries requests retried"
else
    fail "first job after up: $st, ${first_total} s from enqueue, ${first_run} s running, $first_retries requests retried"
fi

# Nine jobs at once: all 3 workers take some, all succeed.
pids=()
for i in $(seq 1 9); do
    enqueue "spread-$i" 100 $(((i - 1) % 3 + 1)) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
spread_ok=1
runs=()
for i in $(seq 1 9); do
    st=$(wait_state "spread-$i" 'succeeded|failed|cancelled' 120) || true
    [[ $st == succeeded ]] || spread_ok=0
    runs+=("$(ms_between "spread-$i" started_at finished_at)")
done
spread_workers=$(for i in $(seq 1 9); do field "spread-$i" worker; done | sort -u | wc -l)
runs_sorted=$(printf '%s\n' "${runs[@]}" | sort -n | tr '\n' ' ')
median_run=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 5p)
if [[ $spread_ok -eq 1 && $spread_workers -eq 3 ]]; then
    pass "9 jobs succeeded on $spread_workers workers; run times ${runs_sorted}s (median $median_run)"
else
    fail "9 jobs: all succeeded: $spread_ok, on $spread_workers workers"
fi
queue_out=$(ctl queue 2>&1 || true)

# --- health: frozen, then resumed ---------------------------------------------
frozen=${workers[1]}
podman kill --signal STOP "$frozen" >/dev/null 2>>"$run/podman.log"
if took=$(wait_health "$frozen" unhealthy 90); then
    unhealthy_s=$took
    podman kill --signal CONT "$frozen" >/dev/null 2>>"$run/podman.log"
    if took=$(wait_health "$frozen" healthy 60); then
        healthy_again_s=$took
        pass "a worker frozen with SIGSTOP turned unhealthy in ${unhealthy_s} s, healthy ${healthy_again_s} s after SIGCONT"
    else
        fail "a resumed worker is still $(health "$frozen") after 60 s"
    fi
else
    podman kill --signal CONT "$frozen" >/dev/null 2>>"$run/podman.log"
    fail "a worker frozen with SIGSTOP is still $(health "$frozen") after 90 s"
fi

# --- SIGTERM during a long job: handed back, finished by another worker ---------
# 1,200 keys take about 19 s, longer than the 8 s grace.
enqueue long-1 1200
wait_state long-1 running 30 >/dev/null || true
long_worker=$(field long-1 worker)
victim=
for c in "${workers[@]}"; do
    h=$(podman inspect "$c" --format '{{.Config.Hostname}}')
    [[ $long_worker == "$h"-* ]] && victim=$c
done
stop_timeout=10
if [[ -n $victim ]]; then
    t=$EPOCHREALTIME
    podman stop -t "$stop_timeout" "$victim" >/dev/null 2>>"$run/podman.log"
    stop_s=$(since "$t")
    exit_code=$(podman inspect "$victim" --format '{{.State.ExitCode}}')
    st=$(wait_state long-1 'succeeded|failed|cancelled' 120) || true
    final_worker=$(field long-1 worker)
    attempts=$(field long-1 attempts)
    if [[ $exit_code -eq 0 ]] && awk -v s="$stop_s" -v l="$stop_timeout" 'BEGIN { exit !(s < l) }' &&
        [[ $st == succeeded && $final_worker != "$long_worker" && $attempts == 1 ]]; then
        pass "SIGTERM during a 1,200-key job: the worker exited 0 in ${stop_s} s (limit ${stop_timeout} s), another finished the job (attempts $attempts)"
    else
        fail "SIGTERM hand-back: exit $exit_code in ${stop_s} s; job $st on $final_worker (was $long_worker), attempts $attempts"
    fi
else
    fail "the long job did not start on a known worker (worker '$long_worker')"
fi

# --- down -v -------------------------------------------------------------------
t=$EPOCHREALTIME
timeout 120 "${compose[@]}" down -v >"$run/down.log" 2>&1 || cat "$run/down.log" >&2
down_s=$(since "$t")
compose_up=0
left=$(project_leftovers | wc -l)
if [[ $left -eq 0 ]]; then
    pass "down -v in ${down_s} s left no container, volume or network"
else
    fail "down -v left $left object(s): $(project_leftovers | tr '\n' ' ')"
fi

# --- the first job after up, again and again -----------------------------------
# Each cycle: Redis alone first, with the first job already queued (as after
# a restart of the workers), so that a worker takes it the moment it starts;
# then up with 3 workers; the job's times and lookup retries, the reasons the
# workers logged for them; down -v.
cycles=()
for i in $(seq 1 "$first_job_runs"); do
    compose_cmd=("${compose_x[@]}")
    compose_up=1
    timeout 120 "${compose_x[@]}" up -d --no-build redis >"$run/up-$i.log" 2>&1 || true
    redis_c=$(cid redis)
    for _ in $(seq 100); do
        [[ $(rcli PING 2>/dev/null | tr -d '\r') == PONG ]] && break
        sleep 0.2
    done
    job_doc "cycle-$i" 100 >"$run/cycle.json"
    rcli HSET "export:job:cycle-$i" state queued queued_at "$(date +%s%3N)" >/dev/null
    podman exec -i "$redis_c" redis-cli -x LPUSH export:queue <"$run/cycle.json" >/dev/null
    t=$EPOCHREALTIME
    if ! timeout 300 "${compose_x[@]}" up -d --no-build --scale worker=3 >>"$run/up-$i.log" 2>&1; then
        cat "$run/up-$i.log" >&2
        fail "cycle $i: docker-compose up"
        break
    fi
    cup=$(since "$t")
    st=$(wait_state "cycle-$i" 'succeeded|failed|cancelled' 120) || true
    c_total=$(ms_between "cycle-$i" queued_at finished_at)
    c_run=$(ms_between "cycle-$i" started_at finished_at)
    c_retries=$(($(rcli HGET export:stats lookup_requests | tr -d '\r') - 100))
    reasons=$(for c in $(podman ps -q --filter "label=com.docker.compose.project=$project" \
        --filter label=com.docker.compose.service=worker); do podman logs "$c" 2>&1; done |
        grep -o 'lookup attempt [0-9]* failed ([^)]*)' | sed 's/^lookup attempt [0-9]* failed //' |
        sort | uniq -c | sort -rn | head -3 | awk '{ $1 = $1 "x"; print }' | paste -sd ';' - ||
        true)
    cycles+=("cycle $i: up ${cup} s; the job queued before it: $st, ${c_run} s running, $c_retries retried${reasons:+: $reasons}")
    log "${cycles[-1]}"
    timeout 120 "${compose_x[@]}" down -v >/dev/null 2>&1 || true
    compose_up=0
done
compose_cmd=("${compose[@]}")

# --- summary -------------------------------------------------------------------
cat <<EOF

container test summary
  base image (debootstrap minbase)   ${base_mb} MB, ${base_s} s (made afresh: $base_made)
  Redis image build                  ${redis_build_s} s
  worker image                       ${image_mb} MB, built in ${build_s} s ($cached of $steps steps cached)
  TLS tunnel image                   ${stunnel_mb:-?} MB, built in ${stunnel_s:-?} s
  compose up, 3 workers healthy      ${up_s:-?} s
  first job after up (100 keys)      ${first_run:-?} s running, ${first_total:-?} s from enqueue
  next 9 jobs (100 keys each)        median ${median_run:-?} s running, on $spread_workers workers
  unhealthy after SIGSTOP            ${unhealthy_s:-?} s; healthy after SIGCONT ${healthy_again_s:-?} s
  SIGTERM during a long job          exit ${exit_code:-?} after ${stop_s:-?} s
  total                              $((SECONDS - t_start)) s
exportctl queue, after the 9 jobs:
$(printf '%s\n' "$queue_out" | sed 's/^/  /')
EOF
for c in "${cycles[@]}"; do echo "  $c"; done
for f in "${failures[@]}"; do echo "  FAILED: $f"; done
echo "container-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
