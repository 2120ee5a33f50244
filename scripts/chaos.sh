#!/usr/bin/env bash
# chaos.sh: a bounded chaos run of export-worker on this host (loopback only).
#
#   scripts/chaos.sh [--seconds N] [--workers N] [--jobs N] [--restarts N]
#                    [--concurrency N] [--proxied F] [--drop-rate P] [--seed N]
#                    [--build-dir DIR]
#
# Starts a redis-server of its own (AOF, appendfsync always), the mock lookup
# service with some faults (500s, hangs, dropped connections) and N workers
# (default 4), a share F of them (default 0.25) reaching Redis through a fault
# proxy that drops the reply to a take or a script with chance P (default
# 0.03) and closes the connection; for N seconds (default 120) it enqueues
# jobs continuously (default 1000 in all), kills random workers with SIGKILL
# (each replaced by a new one) and restarts Redis a few times (default 3).
# Then it waits for every job to end, checks each workbook cell by cell and
# prints a table: jobs run, workers killed, Redis restarts, replies dropped,
# jobs lost, duplicate runs, jobs in P:dead, and how long a dead worker's job
# took to start again against 2 x the heartbeat TTL. Exits non-zero if a job
# was lost or done wrong, or something was left behind.
#
# The binaries come from EXW_WORKER_BIN and EXW_MOCK_BIN if set, else from
# --build-dir (default build/ at the repository's root). More options:
# scripts/chaos.py --help.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,23s/^# \{0,1\}//p' "$0"
}

build_dir=$(exw_repo_root)/build
seed=1
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --build-dir)
        [[ $# -ge 2 ]] || { usage >&2; exit 64; }
        build_dir=$2
        shift
        ;;
    --seed)
        [[ $# -ge 2 ]] || { usage >&2; exit 64; }
        seed=$2
        args+=(--seed "$2")
        shift
        ;;
    --seconds | --workers | --jobs | --restarts | --concurrency | --ttl-ms | --max-attempts | \
        --drain | --kill-min | --kill-max | --proxied | --drop-rate)
        [[ $# -ge 2 ]] || { usage >&2; exit 64; }
        args+=("$1" "$2")
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "chaos.sh: unknown option: $1" >&2
        usage >&2
        exit 64
        ;;
    esac
    shift
done

worker_bin=${EXW_WORKER_BIN:-}
mock_bin=${EXW_MOCK_BIN:-}
[[ -n $worker_bin ]] || worker_bin=$(exw_find_bin "$build_dir" export-worker)
[[ -n $mock_bin ]] || mock_bin=$(exw_find_bin "$build_dir" export-mock-lookup)
exw_redis_server_bin >/dev/null

exw_session chaos

# Faults the workers must retry away: 500s, hangs past the 500 ms request
# timeout, dropped connections (5 retries make a lost key very unlikely).
exw_start_mock "$mock_bin" "$dir" --latency-ms 100 --error-rate 0.04 --timeout-rate 0.01 \
    --hang-ms 2000 --drop-rate 0.02 --seed "$seed"
exw_watchdog "$dir" "$EXW_MOCK_PID"

rc=0
"$EXW_PYTHON" "$here/chaos.py" --mock-url "$EXW_MOCK_URL" --worker-bin "$worker_bin" \
    --dir "$dir" "${args[@]}" || rc=$?
exit "$rc"
