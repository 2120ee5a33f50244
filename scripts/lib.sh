# shellcheck shell=bash
# Shared shell helpers for scripts/with-redis.sh, demo.sh and bench.sh.
# Source it; it defines functions and variables only. Every process a helper
# starts is recorded so that the caller's trap can stop it with exw_stop_all.

# Variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

# Debian's interpreter, whatever else is first on PATH.
EXW_PYTHON=/usr/bin/python3

# PIDs started through these helpers, stopped in reverse order by exw_stop_all.
EXW_PIDS=()

# Prints the repository's root directory.
exw_repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago.
exw_free_port() {
    "$EXW_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# True while PID runs (a zombie, exited but not yet reaped, does not count).
exw_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# exw_stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5).
# Returns the process's exit status when it is our child, else 0.
exw_stop_pid() {
    local pid=$1 secs=${2:-5} i rc=0
    [[ -n $pid ]] || return 0
    if exw_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < secs * 10; i++)); do
            exw_alive "$pid" || break
            sleep 0.1
        done
        if exw_alive "$pid"; then
            echo "pid $pid did not stop within ${secs}s after SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# Stops every process the helpers started, newest first.
exw_stop_all() {
    local i
    for ((i = ${#EXW_PIDS[@]} - 1; i >= 0; i--)); do
        exw_stop_pid "${EXW_PIDS[i]}" || true
    done
    EXW_PIDS=()
}

# exw_watchdog DIR PID...: a background guard that stops PID... and removes
# DIR once this shell is gone, even if it was killed with SIGKILL and its trap
# never ran (a ctest timeout, say). Sets EXW_WATCHDOG_PID; the caller kills it
# on a clean exit.
exw_watchdog() {
    local parent=$$ dir=$1
    shift
    (
        trap '' INT
        while exw_alive "$parent"; do
            sleep 1
        done
        kill -TERM "$@" 2>/dev/null
        sleep 1
        rm -rf "$dir"
    ) </dev/null >/dev/null 2>&1 &
    EXW_WATCHDOG_PID=$!
}

# Prints the path of Debian's redis-server.
exw_redis_server_bin() {
    if [[ -x /usr/bin/redis-server ]]; then
        echo /usr/bin/redis-server
    elif command -v redis-server >/dev/null 2>&1; then
        command -v redis-server
    else
        echo "redis-server not found: run scripts/install-deps.sh" >&2
        return 1
    fi
}

# True when the redis-server on 127.0.0.1:PORT answers PING.
exw_redis_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

# exw_start_redis DIR: starts a throw-away redis-server (no persistence) on a
# free loopback port with DIR as its working directory and log folder, and
# waits until it answers. Sets EXW_REDIS_PID and EXW_REDIS_PORT.
exw_start_redis() {
    local dir=$1 bin port attempt i
    bin=$(exw_redis_server_bin) || return 1
    for attempt in 1 2 3 4 5; do
        port=$(exw_free_port)
        "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
            --save '' --appendonly no --daemonize no \
            --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
        EXW_REDIS_PID=$!
        for ((i = 0; i < 100; i++)); do
            if ! exw_alive "$EXW_REDIS_PID"; then
                break
            fi
            if exw_redis_ping "$port"; then
                EXW_REDIS_PORT=$port
                EXW_PIDS+=("$EXW_REDIS_PID")
                return 0
            fi
            sleep 0.1
        done
        # The port was taken in between, or the server is stuck: try another.
        exw_stop_pid "$EXW_REDIS_PID" 2 || true
        echo "redis-server did not come up on port $port (attempt $attempt)" >&2
    done
    echo "redis-server would not start; its log:" >&2
    cat "$dir/redis.log" >&2 2>/dev/null || true
    return 1
}

# exw_start_mock BIN DIR [--own-session] ARGS...: starts the mock lookup
# service on a free port and waits for its "listening on URL" line. Sets
# EXW_MOCK_PID and EXW_MOCK_URL (http://127.0.0.1:PORT); its log is
# DIR/mock.log. With --own-session it runs in a session of its own (setsid):
# with the kernel's autogroups on, it then gets its own share of the CPU, as
# a service in another container or on another machine would.
exw_start_mock() {
    local bin=$1 dir=$2 line i launch=()
    shift 2
    if [[ ${1:-} == --own-session ]]; then
        launch=(setsid)
        shift
    fi
    : >"$dir/mock.out"
    "${launch[@]}" "$bin" --port 0 "$@" </dev/null >"$dir/mock.out" 2>"$dir/mock.log" &
    EXW_MOCK_PID=$!
    EXW_PIDS+=("$EXW_MOCK_PID")
    for ((i = 0; i < 100; i++)); do
        line=$(head -n 1 "$dir/mock.out")
        if [[ $line == "listening on "* ]]; then
            EXW_MOCK_URL=${line#listening on }
            return 0
        fi
        if ! exw_alive "$EXW_MOCK_PID"; then
            break
        fi
        sleep 0.1
    done
    echo "the mock lookup service did not report its address; its log:" >&2
    cat "$dir/mock.log" >&2 || true
    return 1
}

# exw_start_worker BIN LOGFILE: starts the worker with the caller's exported
# EXPORT_* environment, stderr to LOGFILE. Sets EXW_WORKER_PID.
exw_start_worker() {
    local bin=$1 log=$2
    "$bin" </dev/null >/dev/null 2>"$log" &
    EXW_WORKER_PID=$!
    EXW_PIDS+=("$EXW_WORKER_PID")
    sleep 0.2
    if ! exw_alive "$EXW_WORKER_PID"; then
        echo "export-worker exited at start; its log:" >&2
        cat "$log" >&2 || true
        return 1
    fi
}

# exw_find_bin BUILD_DIR NAME: prints the path of the executable NAME built there.
exw_find_bin() {
    local found
    found=$(find "$1" -name "$2" -type f -perm -u+x -not -path '*/CMakeFiles/*' | head -n 1)
    if [[ -z $found ]]; then
        echo "$2 not found under $1/" >&2
        return 1
    fi
    echo "$found"
}

# exw_build BUILD_DIR [CMAKE_ARGS...]: configures and builds the project.
exw_build() {
    local dir=$1 root
    shift
    root=$(exw_repo_root)
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
    cmake --build "$dir" -j"$(nproc)"
}

# exw_session TAG: makes the temporary folder $dir and the traps that stop
# everything started and remove $dir on exit, Ctrl-C or SIGTERM.
exw_session() {
    dir=$(mktemp -d "${TMPDIR:-/tmp}/exw-$1.XXXXXX")
    EXW_WATCHDOG_PID=
    trap exw_session_end EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # called by the trap
exw_session_end() {
    exw_stop_all
    if [[ -n $EXW_WATCHDOG_PID ]]; then
        kill "$EXW_WATCHDOG_PID" 2>/dev/null || true
        wait "$EXW_WATCHDOG_PID" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
