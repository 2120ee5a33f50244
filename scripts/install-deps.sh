#!/usr/bin/env bash
# Installs the Debian packages that export-worker needs.
#
#   scripts/install-deps.sh            everything to build, test, run the demo and
#                                      the benchmark (and the Docker build stage)
#   scripts/install-deps.sh --runtime  only the shared libraries the worker needs
#                                      at run time (the Docker image's final stage)
#
# When every package is already installed the apt step is skipped, so running
# it again is quick; scripts/test.sh and scripts/demo.sh call it each time.
set -euo pipefail

build_pkgs=(
    build-essential cmake pkg-config
    libhiredis-dev libcurl4-openssl-dev libcjson-dev libxlsxwriter-dev
    libmicrohttpd-dev libssl-dev libcmocka-dev
    # Debian's xlsxwriter.pc links -lz, but libxlsxwriter-dev does not pull in
    # zlib's headers and static link name.
    zlib1g-dev
    # Tests, demo and benchmark.
    redis-server redis-tools python3 python3-redis python3-openpyxl python3-yaml
    # The sanitizer and fuzz builds (the sanitizer runtimes are only a
    # recommendation of clang's, so they are named here).
    clang libclang-rt-dev clang-format git
    ca-certificates
)
runtime_pkgs=(
    libhiredis0.14 libcurl4 libcjson1 libxlsxwriter4 libmicrohttpd12 libssl3
    ca-certificates
)

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

pkgs=("${build_pkgs[@]}")
while [[ $# -gt 0 ]]; do
    case $1 in
    --runtime) pkgs=("${runtime_pkgs[@]}") ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option: $1" >&2
        usage >&2
        exit 64
        ;;
    esac
    shift
done

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
