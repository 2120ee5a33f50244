#!/usr/bin/python3
"""Benchmark of export-worker against the mock lookup service (scripts/bench.sh).

Each scenario gets a fresh worker, so its peak RSS (VmHWM) is its own; each
run enqueues one export of N distinct contracts and times it from LPUSH to
the state `succeeded`. The physical limit is ceil(N / pool) x latency: no
worker with that many lookup threads can be faster.
"""

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

import redis

SCENARIOS = {
    "a": {"title": "100 contracts, 500 ms, pool 128", "rows": 100, "latency": 500,
          "pool": 128},
    "b": {"title": "100 contracts, 500 ms, pool 32", "rows": 100, "latency": 500, "pool": 32},
    "c": {"title": "2,000 contracts, 50 ms, pool 64", "rows": 2000, "latency": 50, "pool": 64},
}


def make_job(jid, nrows, run):
    return {
        "id": jid,
        "sheet": "Contracts",
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [
            {"header": "Contract SN", "field": "sn"},
            {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00"},
            {"header": "Signed", "field": "signed_on", "type": "date"},
            {"header": "Name", "lookup": "/name"},
            {"header": "Discount share", "lookup": "/discount/ratio", "type": "number",
             "format": "0.00%"},
        ],
        "rows": [{"sn": "B%d-%05d" % (run, i), "amount": i * 1.25,
                  "signed_on": "2026-01-%02d" % (i % 28 + 1)} for i in range(nrows)],
        "result_ttl": 60,
    }


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Worker:
    def __init__(self, binary, env, log_path):
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update(env)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([binary], env=full, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def run_once(r, prefix, events, nrows, run, timeout):
    jid = "bench-%d-%d" % (run, int(time.time() * 1000))
    doc = json.dumps(make_job(jid, nrows, run))
    status_key = "%s:job:%s" % (prefix, jid)
    r.hset(status_key, mapping={"state": "queued", "queued_at": int(time.time() * 1000)})
    t0 = time.monotonic()
    r.lpush("%s:queue" % prefix, doc)
    last_poll = t0
    while True:
        msg = events.get_message(timeout=0.005)
        now = time.monotonic()
        state = None
        if msg and msg.get("type") == "message":
            m = json.loads(msg["data"])
            if m.get("id") == jid:
                state = m.get("state")
        if state is None and now - last_poll >= 0.05:
            last_poll = now
            raw = r.hget(status_key, "state")
            state = raw.decode() if raw else None
        if state in ("succeeded", "failed", "cancelled"):
            took = time.monotonic() - t0
            st = {k.decode(): v.decode() for k, v in r.hgetall(status_key).items()}
            if st.get("state") != "succeeded":
                raise RuntimeError("job %s ended %s: %s" % (jid, st.get("state"),
                                                            st.get("error")))
            r.delete(status_key, st["result_key"])
            return took
        if now - t0 > timeout:
            raise RuntimeError("job %s not done after %.0f s" % (jid, timeout))


def mock_lookups(url):
    with urllib.request.urlopen(url + "/_stats", timeout=5) as resp:
        return json.loads(resp.read())["lookups"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--mock500", required=True, help="base URL of the 500 ms mock")
    ap.add_argument("--mock50", required=True, help="base URL of the 50 ms mock")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenarios", default="a,b,c")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    r = redis.Redis.from_url(args.redis_url)
    results = []
    for name in args.scenarios.split(","):
        sc = SCENARIOS[name]
        mock = args.mock500 if sc["latency"] == 500 else args.mock50
        prefix = "bench-%s" % name
        env = {
            "EXPORT_REDIS_URL": args.redis_url,
            "EXPORT_PREFIX": prefix,
            "EXPORT_POOL_SIZE": str(sc["pool"]),
            "EXPORT_WORKER_ID": "bench-%s" % name,
            "EXPORT_TMPDIR": args.workdir,
            "EXPORT_SERVICE_TETHER_URL": mock + "/contract/?sn={key}",
            "EXPORT_LOG_LEVEL": "warn",
        }
        log_path = os.path.join(args.workdir, "worker-%s.log" % name)
        events = r.pubsub(ignore_subscribe_messages=True)
        events.subscribe("%s:events" % prefix)
        worker = Worker(args.worker, env, log_path)
        times, hwm = [], 0
        try:
            before = mock_lookups(mock)
            for run in range(args.runs):
                took = run_once(r, prefix, events, sc["rows"], run, args.timeout)
                times.append(took)
                hwm = max(hwm, vm_hwm_kib(worker.proc.pid))
                sys.stdout.write("  %s) run %d/%d: %.3f s\n" % (name, run + 1, args.runs, took))
                sys.stdout.flush()
            lookups = mock_lookups(mock) - before
        except Exception as e:
            sys.stdout.write("%s) failed: %s; the worker's log:\n" % (name, e))
            worker.stop()
            with open(log_path, "rb") as f:
                sys.stdout.write(f.read()[-4000:].decode("utf-8", "replace"))
            return 1
        finally:
            events.close()
        rc = worker.stop()
        if rc != 0:
            print("%s) the worker exited %s after SIGTERM" % (name, rc))
        for k in r.scan_iter(match=prefix + ":*"):
            r.delete(k)
        limit = math.ceil(sc["rows"] / sc["pool"]) * sc["latency"] / 1000.0
        results.append((name, sc, limit, times, hwm, lookups))

    print()
    head = ("scenario", "limit s", "median s", "min s", "max s", "median/limit", "peak RSS",
            "lookups")
    rows = []
    for name, sc, limit, times, hwm, lookups in results:
        med = statistics.median(times)
        rows.append(("%s) %s" % (name, sc["title"]), "%.2f" % limit, "%.3f" % med,
                     "%.3f" % min(times), "%.3f" % max(times), "%.2fx" % (med / limit),
                     "%.1f MiB" % (hwm / 1024.0),
                     "%d/%d" % (lookups, sc["rows"] * len(times))))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(("%%-%ds" if i == 0 else "%%%ds") % w for i, w in enumerate(widths))
    print(fmt % head)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt % row)
    print("\n%d runs per scenario, timed from LPUSH to succeeded; limit = ceil(N / pool) x "
          "latency; peak RSS = the worker's VmHWM over the scenario's runs." % args.runs)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
