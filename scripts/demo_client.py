#!/usr/bin/python3
"""The web backend's side of the demo (scripts/demo.sh starts the servers).

Enqueues a contract export exactly as PROTOCOL.md section 5 shows, follows its
progress on one line (woken by P:events, read from the status hash), saves the
workbook in out/<filename> and prints its first rows as openpyxl reads them.
Needs only redis-py and openpyxl.
"""

import argparse
import datetime
import hashlib
import io
import json
import math
import os
import sys
import time

import openpyxl
import redis


def make_job(jid, nrows):
    customers = ["ACME Ltd", "Globex", "Initech GmbH", "Soylent & Co", "Umbrella Corp",
                 "Hooli", "Stark Industries", "Wayne Enterprises"]
    rows = []
    for i in range(nrows):
        day = datetime.date(2026, 1, 1) + datetime.timedelta(days=(i * 3) % 330)
        rows.append({
            "sn": "C-%04d" % (i + 1),
            "customer": customers[i % len(customers)],
            "amount": round(250 + (i * 7919) % 100000 / 7.0, 2),
            "signed_on": day.isoformat(),
        })
    return {
        "id": jid,
        "filename": "contracts-%s.xlsx" % jid,
        "sheet": "Contracts",
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [
            {"header": "Contract SN", "field": "sn", "width": 14},
            {"header": "Customer", "field": "customer", "width": 20},
            {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00",
             "width": 12},
            {"header": "Signed", "field": "signed_on", "type": "date", "format": "yyyy-mm-dd",
             "width": 12},
            {"header": "Account name", "lookup": "/name", "width": 16},
            {"header": "Discount share", "lookup": "/discount/ratio", "type": "number",
             "format": "0.00%"},
        ],
        "rows": rows,
        "on_lookup_error": "fail",
        "result_ttl": 3600,
    }


def bar(pct, width=20):
    filled = width * pct // 100
    return "[" + "#" * filled + "." * (width - filled) + "]"


def show(cell):
    v = cell.value
    if v is None:
        return ""
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if cell.number_format.endswith("%"):
            return "%.2f%%" % (v * 100)
        if "0.00" in cell.number_format:
            return "{:,.2f}".format(v)
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--prefix", default="export")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--latency-ms", type=int, default=500,
                    help="the lookup service's latency, for the sequential estimate")
    ap.add_argument("--pool", type=int, default=32, help="the worker's pool, for the estimate")
    ap.add_argument("--out", default="out")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--show-rows", type=int, default=5)
    args = ap.parse_args()

    r = redis.Redis.from_url(args.redis_url)
    p = args.prefix
    jid = "exp-demo-%s" % time.strftime("%Y%m%d-%H%M%S")
    job = make_job(jid, args.rows)

    events = r.pubsub(ignore_subscribe_messages=True)
    events.subscribe("%s:events" % p)

    # The backend's whole integration (PROTOCOL.md section 5).
    t0 = time.monotonic()
    now_ms = int(time.time() * 1000)
    r.hset("%s:job:%s" % (p, jid), mapping={"state": "queued", "queued_at": now_ms})
    r.lpush("%s:queue" % p, json.dumps(job))
    print("enqueued %s: %d contracts, each needing a lookup of %d ms"
          % (jid, args.rows, args.latency_ms))

    st = {}
    while True:
        events.get_message(timeout=0.1)  # wakes early on a state or progress change
        st = {k.decode(): v.decode() for k, v in r.hgetall("%s:job:%s" % (p, jid)).items()}
        state = st.get("state", "?")
        pct = int(st.get("progress", "0") or 0)
        line = "\r%-9s %s %3d%%  rows %s/%s  lookups %s/%s  %5.1f s" % (
            state, bar(pct), pct, st.get("rows_written", "0"), st.get("rows_total", "?"),
            st.get("lookups_done", "0"), st.get("lookups_total", "?"),
            time.monotonic() - t0)
        sys.stdout.write(line.ljust(79))
        sys.stdout.flush()
        if state in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() - t0 > args.timeout:
            print("\ngave up after %.0f s" % args.timeout)
            return 1
    elapsed = time.monotonic() - t0
    print()
    events.close()

    if st["state"] != "succeeded":
        print("the export ended %s: %s: %s" % (st["state"], st.get("error_code", "-"),
                                               st.get("error", "-")))
        return 1

    data = r.get(st["result_key"])
    if data is None or hashlib.sha256(data).hexdigest() != st.get("result_sha256"):
        print("the result at %s is missing or does not match its sha256" % st["result_key"])
        return 1
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, os.path.basename(st["filename"]))
    with open(path, "wb") as f:
        f.write(data)

    sequential = args.rows * args.latency_ms / 1000.0
    limit = math.ceil(args.rows / args.pool) * args.latency_ms / 1000.0
    print("wrote %s (%d bytes)" % (path, len(data)))
    print("elapsed %.2f s from LPUSH to succeeded; one lookup after another would take "
          "%.0f s (%d x %.1f s): %.1fx faster (the floor with %d threads is %.1f s)"
          % (elapsed, sequential, args.rows, args.latency_ms / 1000.0,
             sequential / elapsed, args.pool, limit))

    ws = openpyxl.load_workbook(io.BytesIO(data))[job["sheet"]]
    rows = [[show(c) for c in row] for row in ws.iter_rows(max_row=args.show_rows + 1)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("first %d rows of sheet %r as openpyxl reads them:" % (len(rows) - 1, ws.title))
    for n, row in enumerate(rows):
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print()
        sys.exit(130)
