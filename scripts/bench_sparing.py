#!/usr/bin/python3
"""The figures of sparing the lookup service (issue 11), each the median of --runs runs.

  caps:   4 workers at pool 32, _MAX_INFLIGHT=8 and _RATE=40, 8 jobs of 60 keys, one
          worker killed (kill -9) 3 s in: the mock's most requests in flight, most
          arrivals in any sliding second and in any whole second, against the caps;
          every workbook checked. Twice: the mock at 500 ms (the cap on requests in
          flight binds: 16 a second) and at 100 ms (the rate binds).
  repeat: one worker at pool 32, _CACHE_TTL on, a mock at 500 ms: an export of 100
          distinct keys, then the same keys again under a new id: time and requests.
  cost:   one worker at pool 32, a mock at 5 ms, 3000 distinct keys, without caps, with
          _MAX_INFLIGHT=16, and with _RATE=2000 too: the Redis script calls the caps
          added, per request.
  seed:   the seed scenario, 100 distinct keys at 500 ms, through a batch endpoint
          (_BATCH_MAX 100) at pool 1 and at pool 32, and through single lookups at
          pool 32 for comparison.

Run it against a build with a throw-away Redis:
    EXW_WORKER_BIN=build/export-worker EXW_MOCK_BIN=build/mock/export-mock-lookup \\
        scripts/with-redis.sh /usr/bin/python3 scripts/bench_sparing.py --runs 5
Nothing here asserts a speed; a wrong workbook or a cap exceeded is reported as such.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "e2e"))
import harness  # noqa: E402

import redis  # noqa: E402


class Bench:
    def __init__(self, args):
        self.args = args
        self.worker_bin = harness.env_or_die("EXW_WORKER_BIN")
        self.mock_bin = harness.env_or_die("EXW_MOCK_BIN")
        self.r = redis.Redis.from_url(harness.env_or_die("EXW_TEST_REDIS_URL"))
        self.tmp = tempfile.mkdtemp(prefix="exw-bench-sparing-")
        self.procs = []
        self.findings = []

    # ---- processes ----
    def mock(self, *args, latency_ms):
        m = harness.Mock(self.mock_bin, self.tmp, ["--latency-ms", str(latency_ms)] + list(args))
        self.procs.append(m)
        return m

    def worker(self, prefix, mock, n, **env):
        full = {"EXPORT_REDIS_URL": os.environ["EXW_TEST_REDIS_URL"],
                "EXPORT_PREFIX": prefix, "EXPORT_WORKER_ID": "%s-w%d" % (prefix, n),
                "EXPORT_LOG_LEVEL": "warn", "EXPORT_SERVICE_TETHER_URL": mock.url(),
                "EXPORT_TMPDIR": tempfile.mkdtemp(dir=self.tmp)}
        full.update({k: str(v) for k, v in env.items()})
        log = os.path.join(self.tmp, "%s-%d.log" % (prefix, n))
        w = harness.Worker(self.worker_bin, full, log, full["EXPORT_TMPDIR"])
        self.procs.append(w)
        deadline = time.monotonic() + 10
        while not self.r.sismember(prefix + ":workers", w.id):
            if time.monotonic() > deadline or not w.running():
                raise RuntimeError("worker did not register: %s" % w.log()[-2000:])
            time.sleep(0.02)
        return w

    def stop_all(self):
        for p in self.procs:
            p.stop()
        self.procs = []

    def cleanup(self, prefix):
        for k in self.r.scan_iter(match=prefix + ":*", count=1000):
            self.r.delete(k)

    # ---- jobs ----
    def run_jobs(self, prefix, jobs, timeout=300):
        """Enqueues @jobs, waits for all: {id: status}."""
        for job in jobs:
            self.r.hset("%s:job:%s" % (prefix, job["id"]),
                        mapping={"state": "queued", "queued_at": harness.now_ms()})
            self.r.lpush(prefix + ":queue", harness.json.dumps(job))
        deadline = time.monotonic() + timeout
        done = {}
        while len(done) < len(jobs):
            for job in jobs:
                if job["id"] in done:
                    continue
                raw = self.r.hgetall("%s:job:%s" % (prefix, job["id"]))
                st = {k.decode(): v.decode() for k, v in raw.items()}
                if st.get("state") in harness.TERMINAL:
                    done[job["id"]] = st
            if time.monotonic() > deadline:
                raise RuntimeError("jobs not done within %d s" % timeout)
            time.sleep(0.01)
        return done

    def check(self, prefix, job, st):
        data = self.r.get(st.get("result_key", prefix + ":none"))
        problems = harness.workbook_problems(data or b"", job, st) if data else ["no result"]
        if st.get("state") != "succeeded" or problems:
            self.findings.append("%s: %s %s" % (job["id"], st.get("state"), problems[:3]))

    @staticmethod
    def took_s(st):
        return (int(st["finished_at"]) - int(st["started_at"])) / 1000.0

    # ---- scenarios ----
    def caps(self, run, latency_ms):
        prefix = "bench-caps-%s" % uuid.uuid4().hex[:6]
        cap, rate = 8, 40
        mock = self.mock(latency_ms=latency_ms)
        env = dict(EXPORT_POOL_SIZE=32, EXPORT_CONCURRENCY=2, EXPORT_HEARTBEAT_TTL_MS=2000,
                   EXPORT_SERVICE_TETHER_MAX_INFLIGHT=cap, EXPORT_SERVICE_TETHER_RATE=rate,
                   EXPORT_SERVICE_TETHER_TIMEOUT_MS=2000)
        workers = [self.worker(prefix, mock, n, **env) for n in range(4)]
        jobs = [harness.lookup_job_doc("caps-%d-%d" % (run, n),
                                       ["J%d-%d-%03d" % (run, n, i) for i in range(60)])
                for n in range(8)]
        t0 = time.monotonic()
        for job in jobs:
            self.r.lpush(prefix + ":queue", harness.json.dumps(job))
        time.sleep(3)
        victim = next((w for w in workers
                       if self.r.hget("%s:worker:%s" % (prefix, w.id), "job")), workers[0])
        victim.kill9()
        done = {}
        while len(done) < len(jobs):
            for job in jobs:
                raw = self.r.hgetall("%s:job:%s" % (prefix, job["id"]))
                st = {k.decode(): v.decode() for k, v in raw.items()}
                if st.get("state") in harness.TERMINAL:
                    done[job["id"]] = st
            time.sleep(0.02)
            if time.monotonic() - t0 > 300:
                raise RuntimeError("caps: jobs not done")
        took = time.monotonic() - t0
        for job in jobs:
            self.check(prefix, job, done[job["id"]])
        s = mock.stats()
        self.stop_all()
        self.cleanup(prefix)
        if s["max_in_flight"] > cap or s["max_in_any_second"] > rate * 1.1:
            self.findings.append("caps run %d over the caps: %r" % (run, s))
        return {"in_flight": s["max_in_flight"], "any_second": s["max_in_any_second"],
                "whole_second": s["max_per_second"], "requests": s["lookups"], "took": took}

    def repeat(self, run):
        prefix = "bench-repeat-%s" % uuid.uuid4().hex[:6]
        mock = self.mock(latency_ms=500)
        self.worker(prefix, mock, 1, EXPORT_POOL_SIZE=32, EXPORT_SERVICE_TETHER_CACHE_TTL=600)
        keys = ["R%d-%03d" % (run, i) for i in range(100)]
        first = harness.lookup_job_doc("first-%d" % run, keys)
        st1 = self.run_jobs(prefix, [first])[first["id"]]
        req1 = mock.stats()["lookups"]
        second = dict(first, id="second-%d" % run)
        st2 = self.run_jobs(prefix, [second])[second["id"]]
        req2 = mock.stats()["lookups"] - req1
        self.check(prefix, first, st1)
        self.check(prefix, second, st2)
        self.stop_all()
        self.cleanup(prefix)
        return {"first": self.took_s(st1), "first_requests": req1,
                "repeat": self.took_s(st2), "repeat_requests": req2}

    def script_calls(self):
        info = self.r.info("commandstats")
        return sum(info.get("cmdstat_" + c, {}).get("calls", 0) for c in ("evalsha", "eval"))

    def cost(self, run, mode):
        prefix = "bench-cost-%s" % uuid.uuid4().hex[:6]
        mock = self.mock(latency_ms=5)
        env = {"EXPORT_POOL_SIZE": 32}
        if mode in ("permits", "both"):
            env["EXPORT_SERVICE_TETHER_MAX_INFLIGHT"] = 16
        if mode == "both":
            env["EXPORT_SERVICE_TETHER_RATE"] = 2000
        self.worker(prefix, mock, 1, **env)
        job = harness.lookup_job_doc("cost-%d" % run, ["C%d-%04d" % (run, i) for i in range(3000)])
        before = self.script_calls()
        st = self.run_jobs(prefix, [job])[job["id"]]
        calls = self.script_calls() - before
        self.check(prefix, job, st)
        s = mock.stats()
        self.stop_all()
        self.cleanup(prefix)
        return {"took": self.took_s(st), "calls": calls, "requests": s["lookups"],
                "in_flight": s["max_in_flight"]}

    def seed(self, run, pool, batch):
        prefix = "bench-seed-%s" % uuid.uuid4().hex[:6]
        mock = self.mock(latency_ms=500)
        env = {"EXPORT_POOL_SIZE": pool}
        if batch:
            env["EXPORT_SERVICE_TETHER_BATCH_URL"] = mock.base + "/batch/{keys}"
        self.worker(prefix, mock, 1, **env)
        job = harness.lookup_job_doc("seed-%d" % run, ["S%d-%03d" % (run, i) for i in range(100)])
        st = self.run_jobs(prefix, [job])[job["id"]]
        self.check(prefix, job, st)
        req = mock.stats()["lookups"]
        self.stop_all()
        self.cleanup(prefix)
        return {"took": self.took_s(st), "requests": req}


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="caps,repeat,cost,seed")
    args = ap.parse_args()
    b = Bench(args)
    only = args.only.split(",")
    out = []
    try:
        for latency in (500, 100) if "caps" in only else ():
            rows = []
            for run in range(args.runs):
                rows.append(b.caps(run, latency))
                print("caps %d ms run %d: %r" % (latency, run, rows[-1]), flush=True)
            out.append("| caps: 4 workers x pool 32, MAX_INFLIGHT 8, RATE 40/s, %d ms, "
                       "one killed | most in flight %g (max %d) | most in any sliding second "
                       "%g (max %d), in a whole second %g | %g requests in %.1f s |"
                       % (latency, med(rows, "in_flight"), max(r["in_flight"] for r in rows),
                          med(rows, "any_second"), max(r["any_second"] for r in rows),
                          med(rows, "whole_second"), med(rows, "requests"), med(rows, "took")))
        if "repeat" in only:
            rows = []
            for run in range(args.runs):
                rows.append(b.repeat(run))
                print("repeat run %d: %r" % (run, rows[-1]), flush=True)
            out.append("| repeat export, 100 keys x 500 ms, pool 32, CACHE_TTL on | first "
                       "%.2f s, %g requests | repeat %.3f s, %g requests |"
                       % (med(rows, "first"), med(rows, "first_requests"), med(rows, "repeat"),
                          med(rows, "repeat_requests")))
        if "cost" in only:
            modes = ("none", "permits", "both")
            rows = {m: [] for m in modes}
            for run in range(args.runs):
                for mode in modes:
                    rows[mode].append(b.cost(run, mode))
                    print("cost %s run %d: %r" % (mode, run, rows[mode][-1]), flush=True)
            for mode, label in (("permits", "MAX_INFLIGHT 16"),
                                ("both", "MAX_INFLIGHT 16 and RATE 2000/s")):
                extra = [c["calls"] - u["calls"] for c, u in zip(rows[mode], rows["none"])]
                out.append("| Redis cost of %s: 3000 keys x 5 ms, pool 32 | %g more script "
                           "calls than uncapped (%.3f per request) | %.2f s, uncapped %.2f s, "
                           "most in flight %g |"
                           % (label, statistics.median(extra), statistics.median(extra) / 3000,
                              med(rows[mode], "took"), med(rows["none"], "took"),
                              med(rows[mode], "in_flight")))
        if "seed" in only:
            for pool, batch in ((1, True), (32, True), (32, False)):
                rows = []
                for run in range(args.runs):
                    rows.append(b.seed(run, pool, batch))
                    print("seed pool %d batch %s run %d: %r" % (pool, batch, run, rows[-1]),
                          flush=True)
                out.append("| seed 100 keys x 500 ms, pool %d, %s | %.2f s (min %.2f, max %.2f)"
                           " | %g requests |"
                           % (pool, "batch endpoint (BATCH_MAX 100)" if batch else
                              "single lookups", med(rows, "took"),
                              min(r["took"] for r in rows), max(r["took"] for r in rows),
                              med(rows, "requests")))
    finally:
        b.stop_all()
    print("\nmedians of %d runs:" % args.runs)
    for line in out:
        print(line)
    for f in b.findings:
        print("FINDING: " + f)
    return 1 if b.findings else 0


if __name__ == "__main__":
    sys.exit(main())
