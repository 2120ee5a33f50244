#!/usr/bin/env bash
# test.sh: installs what the build needs, builds and runs every test.
#
#   scripts/test.sh                          plain build, then ASan+UBSan build
#   scripts/test.sh --plain                  plain build only
#   scripts/test.sh --sanitize address,undefined
#   scripts/test.sh --sanitize thread        one sanitizer build only (clang for thread)
#   scripts/test.sh --all                    plain, ASan+UBSan, TSan, then the fuzz
#                                            targets (30 s each) and the format check
#
# Builds go to build/ (plain), build-asan/ and build-tsan/ at the repository's
# root, with warnings as errors. Tests labelled "once" (the slow ones, and
# those of the Python client, the Django example and the schema) run in the
# plain build only. Extra arguments after "--" go to ctest, e.g.
#   scripts/test.sh --plain -- -L e2e
# Exits non-zero when any build or test fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "$0"
}

asan=address,undefined
suites=(plain asan)
ctest_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --plain) suites=(plain) ;;
    --all) suites=(plain asan tsan fuzz format) ;;
    --sanitize)
        [[ $# -ge 2 ]] || {
            usage >&2
            exit 64
        }
        case $2 in
        thread) suites=(tsan) ;;
        address,undefined | undefined,address | address | undefined)
            asan=$2
            suites=(asan)
            ;;
        *)
            echo "test.sh: --sanitize takes address,undefined or thread, not '$2'" >&2
            exit 64
            ;;
        esac
        shift
        ;;
    --sanitize=*)
        set -- --sanitize "${1#--sanitize=}" "${@:2}"
        continue
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        ctest_args=("$@")
        break
        ;;
    *)
        echo "test.sh: unknown option: $1" >&2
        usage >&2
        exit 64
        ;;
    esac
    shift
done

scripts/install-deps.sh

# run_suite NAME BUILD_DIR [CMAKE_ARGS...]
run_suite() {
    local name=$1 dir=$2 start
    shift 2
    start=$SECONDS
    echo "==> [$name] configure and build in $dir/"
    if ! cmake -S . -B "$dir" -DEXW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DEXW_TESTS=ON "$@" || ! cmake --build "$dir" -j"$(nproc)"; then
        echo "==> [$name] the build FAILED" >&2
        return 1
    fi
    echo "==> [$name] ctest"
    # Tests labelled once run in the plain build only.
    local only=()
    if [[ $name != plain ]]; then
        only=(-LE once)
    fi
    if ! ctest --test-dir "$dir" --output-on-failure -j2 "${only[@]}" "${ctest_args[@]}"; then
        echo "==> [$name] tests FAILED after $((SECONDS - start))s" >&2
        return 1
    fi
    echo "==> [$name] passed in $((SECONDS - start))s"
}

# Every suite runs even when an earlier one failed, so one run shows everything.
total=$SECONDS
failed=()
for s in "${suites[@]}"; do
    case $s in
    plain)
        run_suite plain build || failed+=(plain)
        ;;
    tsan)
        if ! (
            export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
            run_suite tsan build-tsan -DEXW_SANITIZE=thread -DCMAKE_C_COMPILER=clang
        ); then
            failed+=(tsan)
        fi
        ;;
    fuzz)
        echo "==> [fuzz] libFuzzer targets, 30 s each"
        scripts/fuzz.sh --seconds 30 || failed+=(fuzz)
        ;;
    format)
        echo "==> [format] clang-format --dry-run"
        if ! git ls-files -- '*.c' '*.h' | xargs clang-format --dry-run -Werror; then
            failed+=(format)
        fi
        ;;
    asan)
        if ! (
            export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
            export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
            run_suite asan build-asan -DEXW_SANITIZE="$asan"
        ); then
            failed+=(asan)
        fi
        ;;
    esac
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> FAILED: ${failed[*]} (of ${suites[*]}) after $((SECONDS - total))s" >&2
    exit 1
fi
echo "==> all passed (${suites[*]}) in $((SECONDS - total))s"
