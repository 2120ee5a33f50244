#!/usr/bin/env bash
# with-redis.sh CMD [ARGS...]: runs CMD against a throw-away redis-server.
#
# The server listens on a free port of 127.0.0.1, keeps nothing on disk and
# lives in a temporary folder. CMD sees EXW_TEST_REDIS_PORT and
# EXW_TEST_REDIS_URL (redis://127.0.0.1:PORT/0). The server is shut down and
# the folder removed however CMD ends; the script exits with CMD's status.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

if [[ $# -lt 1 ]]; then
    echo "usage: with-redis.sh CMD [ARGS...]" >&2
    exit 64
fi

exw_session redis

exw_start_redis "$dir"
exw_watchdog "$dir" "$EXW_REDIS_PID"

export EXW_TEST_REDIS_PORT=$EXW_REDIS_PORT
export EXW_TEST_REDIS_URL=redis://127.0.0.1:$EXW_REDIS_PORT/0

rc=0
"$@" || rc=$?
exit "$rc"
