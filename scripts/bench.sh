#!/usr/bin/env bash
# bench.sh: how close export-worker comes to the physical limits and to plain
# reference programs (bench/); prints one table. Not a test: nothing is asserted.
#
# Builds the worker, the mock lookup service and bench/'s reference programs
# (RelWithDebInfo, in build/ unless --build-dir), starts a throw-away
# redis-server and mock lookup services answering after 500, 50, 10 and 0 ms
# on free loopback ports (the 0-ms one twice: once in a session of its own);
# scripts/bench.py then runs each scenario against a fresh worker. The full
# suite takes about 15 minutes on 2 cores, --quick about 2.
#
#   scripts/bench.sh [--build-dir DIR] [--runs N] [--quick] [--only GROUPS]
#                    [--markdown FILE] [--shape JOB.json ROWS.jsonl]
#   GROUPS: comma-separated of seed,grid,lookups,books,bigjob,mixed,small,shape
#   --shape adds a job of your own shape: a job document's columns (no lookups)
#   and its rows, one JSON object a line, against bench-xlsx-cells writing the
#   same cells; --only shape runs only that.
set -euo pipefail

here=$PWD
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

build=build
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help)
        sed -n '2,17s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    --build-dir)
        [[ $# -ge 2 ]] || { echo "bench.sh: --build-dir needs a value" >&2; exit 64; }
        build=$2
        shift
        ;;
    --build-dir=*) build=${1#--build-dir=} ;;
    --shape)
        [[ $# -ge 3 ]] || { echo "bench.sh: --shape needs JOB.json ROWS.jsonl" >&2; exit 64; }
        args+=(--shape "$(cd "$here" && realpath -- "$2")" "$(cd "$here" && realpath -- "$3")")
        shift 2
        ;;
    *) args+=("$1") ;;
    esac
    shift
done

dir=
exw_session bench

scripts/install-deps.sh
if grep -qE '^EXW_SANITIZE:STRING=.+' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "bench.sh: $build/ is a sanitizer build; give --build-dir of a plain one" >&2
    exit 64
fi
echo "==> building in $build/"
targets=(export-worker export-mock-lookup bench-curl-multi bench-xlsx-loop bench-redis-cycles
    bench-xlsx-cells)
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"; } >"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "bench.sh: the build failed (log above)" >&2
    exit 1
fi
bins=()
for t in "${targets[@]}"; do
    bins+=("$(exw_find_bin "$build" "$t")")
done

exw_start_redis "$dir"
mocks=()
for ms in 500 50 10 0; do
    mkdir -p "$dir/mock$ms"
    exw_start_mock "${bins[1]}" "$dir/mock$ms" --latency-ms "$ms"
    mocks+=(--mock "$ms=$EXW_MOCK_URL")
done
# The 0-ms service once more, in a session of its own (see exw_start_mock).
mkdir -p "$dir/mock-apart"
exw_start_mock "${bins[1]}" "$dir/mock-apart" --own-session --latency-ms 0
mocks+=(--mock-apart "$EXW_MOCK_URL")

"$EXW_PYTHON" scripts/bench.py --worker "${bins[0]}" --curl-multi "${bins[2]}" \
    --xlsx-loop "${bins[3]}" --redis-cycles "${bins[4]}" --xlsx-cells "${bins[5]}" \
    --redis-url "redis://127.0.0.1:$EXW_REDIS_PORT/0" "${mocks[@]}" \
    --workdir "$dir" "${args[@]}"
