#!/usr/bin/env bash
# The man pages render with man -l, without a warning from groff, and hold
# what a reader looks for: the name, the synopsis, and for each page the
# words given after it (PAGE=WORD,WORD...).
#   tests/man_pages.sh build/man/exportctl.1=COMMANDS,enqueue ...
set -euo pipefail
status=0
for arg in "$@"; do
    page=${arg%%=*}
    words=${arg#*=}
    out=$(MANWIDTH=100 man --warnings -l "$page" 2>/tmp/man-warn.$$) || {
        echo "man -l $page failed" >&2
        status=1
    }
    if [[ -s /tmp/man-warn.$$ ]]; then
        echo "man -l $page warned:" >&2
        cat /tmp/man-warn.$$ >&2
        status=1
    fi
    for word in NAME SYNOPSIS DESCRIPTION ${words//,/ }; do
        if ! grep -qF -- "$word" <<<"$out"; then
            echo "$page: no \"$word\" in the rendered page" >&2
            status=1
        fi
    done
    echo "$page: $(wc -l <<<"$out") lines rendered"
done
rm -f /tmp/man-warn.$$
exit $status
