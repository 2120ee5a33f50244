#!/usr/bin/env bash
# Installs the Debian packages that export-worker needs.
#
#   scripts/install-deps.sh            everything to build, test, run the demo and
#                                      the benchmark
#   scripts/install-deps.sh --build    only what compiling needs, with the tests
#                                      off (-DEXW_TESTS=OFF): the Docker build stage
#   scripts/install-deps.sh --runtime  only the shared libraries the programs need
#                                      at run time (the Docker image's final stage)
#   scripts/install-deps.sh [MODE] PACKAGE...   the same, plus those packages,
#                                      in the same apt run
#
# When every package is already installed the apt step is skipped, so running
# it again is quick; scripts/test.sh and scripts/demo.sh call it each time.
set -euo pipefail

# What compiling the programs needs (-DEXW_TESTS=OFF), exportctl's top included.
compile_pkgs=(
    build-essential cmake pkg-config
    libhiredis-dev libcurl4-openssl-dev libcjson-dev libxlsxwriter-dev
    libmicrohttpd-dev libssl-dev libncurses-dev
    # Debian's xlsxwriter.pc links -lz, but libxlsxwriter-dev does not pull in
    # zlib's headers and static link name.
    zlib1g-dev
)
build_pkgs=(
    "${compile_pkgs[@]}" libcmocka-dev
    # Tests, demo and benchmark.
    redis-server redis-tools redis-sentinel python3 python3-redis python3-openpyxl python3-yaml
    # The client, the Django example, the schema and manifest checks, the
    # metrics scrape and the man pages (rendered with man -l in the tests).
    python3-django python3-jsonschema python3-prometheus-client
    help2man man-db groff-base tmux
    # The TLS tunnel to Redis (tests/e2e/test_tls_tunnel.py): stunnel in client
    # mode, a certificate authority and certificates made with openssl.
    stunnel4 openssl
    # The sanitizer and fuzz builds (the sanitizer runtimes are only a
    # recommendation of clang's, so they are named here).
    clang libclang-rt-dev clang-format git
    ca-certificates
)
runtime_pkgs=(
    libhiredis0.14 libcurl4 libcjson1 libxlsxwriter4 libmicrohttpd12 libssl3 libncursesw6
    ca-certificates
)

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "$0"
}

pkgs=("${build_pkgs[@]}")
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) pkgs=("${compile_pkgs[@]}") ;;
    --runtime) pkgs=("${runtime_pkgs[@]}") ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        echo "install-deps.sh: unknown option: $1" >&2
        usage >&2
        exit 64
        ;;
    *) extra+=("$1") ;;
    esac
    shift
done
pkgs+=("${extra[@]}")

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    if [[ $status != installed ]]; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps.sh: all ${#pkgs[@]} packages already installed"
    exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps.sh: not root and no sudo; install as root: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
