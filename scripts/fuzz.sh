#!/usr/bin/env bash
# Runs the libFuzzer targets for a bounded time each (default 30 s; --seconds N),
# starting from the seed corpus in tests/fuzz/seeds. Crashes are kept under
# build-fuzz/artifacts and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    -h|--help) echo "usage: scripts/fuzz.sh [--seconds N]"; exit 0 ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DEXW_FUZZ=ON -DEXW_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_job fuzz_pointer >/dev/null
mkdir -p build-fuzz/artifacts
status=0
for target in job pointer; do
  corpus="build-fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz_$target: ${seconds} s"
  if ! ASAN_OPTIONS=detect_leaks=1 "build-fuzz/fuzz_$target" "$corpus" "tests/fuzz/seeds/$target" \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 2> "build-fuzz/fuzz_$target.log"; then
    status=1
    tail -40 "build-fuzz/fuzz_$target.log"
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "build-fuzz/fuzz_$target.log" | tail -2 || true
done
exit $status
