#!/usr/bin/env bash
# demo.sh: builds export-worker and runs one export end to end on this machine.
#
# Starts a throw-away redis-server, the mock lookup service (500 ms per lookup)
# and one worker (32 lookup threads) on free loopback ports, then enqueues a
# 100-contract export as a web backend would, shows its progress, saves the
# workbook in out/ and prints its first rows. Everything it started is stopped
# when it ends, Ctrl-C included.
#
#   scripts/demo.sh [--rows N] [--latency-ms MS] [--pool N]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

rows=100
latency_ms=500
pool=32
while [[ $# -gt 0 ]]; do
    case $1 in
    --rows) rows=$2; shift ;;
    --latency-ms) latency_ms=$2; shift ;;
    --pool) pool=$2; shift ;;
    -h | --help)
        sed -n '2,10s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "demo.sh: unknown option: $1" >&2
        exit 64
        ;;
    esac
    shift
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/exw-demo.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    exw_stop_all
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo; echo "demo.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

scripts/install-deps.sh
echo "==> building in build/"
if ! exw_build build >"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "demo.sh: the build failed (log above)" >&2
    exit 1
fi

echo "==> starting redis-server, the mock lookup service (${latency_ms} ms)" \
    "and the worker (pool ${pool})"
exw_start_redis "$dir"
exw_start_mock "$(exw_find_bin build export-mock-lookup)" "$dir" --latency-ms "$latency_ms"

export EXPORT_REDIS_URL=redis://127.0.0.1:$EXW_REDIS_PORT/0
export EXPORT_PREFIX=export
export EXPORT_POOL_SIZE=$pool
export EXPORT_WORKER_ID=demo-worker
export EXPORT_TMPDIR=$dir
export EXPORT_SERVICE_TETHER_URL="$EXW_MOCK_URL/contract/?sn={key}"
exw_start_worker "$(exw_find_bin build export-worker)" "$dir/worker.log"

rc=0
"$EXW_PYTHON" scripts/demo_client.py --redis-url "$EXPORT_REDIS_URL" --prefix "$EXPORT_PREFIX" \
    --rows "$rows" --latency-ms "$latency_ms" --pool "$pool" --out out || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "demo.sh: the export did not succeed; the worker's log:" >&2
    tail -n 50 "$dir/worker.log" >&2 || true
fi
exit "$rc"
