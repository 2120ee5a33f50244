#!/usr/bin/env bash
# bench.sh: how close export-worker comes to the physical limit (not a test).
#
# Builds build/, starts a throw-away redis-server and two mock lookup
# services (500 ms and 50 ms) on free loopback ports, then scripts/bench.py
# runs each scenario against a fresh worker and prints a table:
#   a) 100 contracts at 500 ms, pool 128    b) the same, pool 32
#   c) 2,000 contracts at 50 ms, pool 64
#
#   scripts/bench.sh [--runs N] [--scenarios a,b,c]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

for a in "$@"; do
    if [[ $a == -h || $a == --help ]]; then
        sed -n '2,10s/^# \{0,1\}//p' "$0"
        exit 0
    fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/exw-bench.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    exw_stop_all
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo; echo "bench.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

scripts/install-deps.sh
echo "==> building in build/"
if ! exw_build build >"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "bench.sh: the build failed (log above)" >&2
    exit 1
fi
worker=$(exw_find_bin build export-worker)
mockbin=$(exw_find_bin build export-mock-lookup)

exw_start_redis "$dir"
mkdir -p "$dir/m500" "$dir/m50"
exw_start_mock "$mockbin" "$dir/m500" --latency-ms 500
mock500=$EXW_MOCK_URL
exw_start_mock "$mockbin" "$dir/m50" --latency-ms 50
mock50=$EXW_MOCK_URL

"$EXW_PYTHON" scripts/bench.py --worker "$worker" \
    --redis-url "redis://127.0.0.1:$EXW_REDIS_PORT/0" \
    --mock500 "$mock500" --mock50 "$mock50" --workdir "$dir" "$@"
