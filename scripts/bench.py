#!/usr/bin/python3
"""Benchmark suite of export-worker against its physical limits and plain reference programs.

Run through scripts/bench.sh, which builds the worker, the mock lookup service
and the reference programs of bench/, starts a throw-away redis-server and one
mock per latency, and passes their addresses here. Each scenario gets a fresh
worker (so its peak RSS, VmHWM from /proc, is its own); each figure is the
median of --runs runs, and each ratio is taken within one run (worker and
reference back to back) before the median. Nothing here asserts a speed.
"""

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import redis

CITIES = ["Lisbon", "Oslo", "Tallinn", "Porto", "Graz", "Turku", "Ghent", "Brno"]
EPOCH_2020 = 18262  # days from 1970-01-01 to 2020-01-01

# The ten typed columns; bench/xlsx_loop.c writes the same cells from the same formulas.
COLUMNS10 = [
    {"header": "ID", "field": "id"},
    {"header": "Customer", "field": "name"},
    {"header": "City", "field": "city"},
    {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00"},
    {"header": "Discount", "field": "ratio", "type": "number", "format": "0.00%"},
    {"header": "Quantity", "field": "qty", "type": "integer"},
    {"header": "Sequence", "field": "seq", "type": "integer"},
    {"header": "Signed", "field": "signed", "type": "date"},
    {"header": "Due", "field": "due", "type": "date"},
    {"header": "Active", "field": "active", "type": "boolean"},
]
LOOKUP_COLUMNS = [
    {"header": "Customer name", "lookup": "/name"},
    {"header": "Discount share", "lookup": "/discount/ratio", "type": "number",
     "format": "0.00%"},
]
LOOKUP = {"service": "tether", "key": "id"}
RSS_TARGET_MIB = 64

# Sizes: the full suite, and --quick.
FULL = {"grid_rows": 2000, "lookup_keys": 100000, "book_rows": [100000, 1000000],
        "lookup_rows": 1000000, "mixed_large": 100000, "mixed_small": 50, "small_jobs": 1000,
        "redis_cycles": 20000}
QUICK = {"grid_rows": 500, "lookup_keys": 20000, "book_rows": [100000],
         "lookup_rows": 50000, "mixed_large": 20000, "mixed_small": 50, "small_jobs": 100,
         "redis_cycles": 5000}
GROUPS = ["seed", "grid", "lookups", "books", "bigjob", "mixed", "small"]


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def days_to_iso(days):
    """The proleptic Gregorian date of days since 1970-01-01 (as xlsx_loop.c's date_of)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return "%04d-%02d-%02d" % (yoe + era * 400 + (m <= 2), m, d)


DATES = [days_to_iso(EPOCH_2020 + k) for k in range(2030)]


def row_json(i):
    """Row i of every workbook scenario, as JSON text (see bench/xlsx_loop.c)."""
    return ('{"id":"R%07d","name":"Customer %03d","city":"%s","amount":%r,"ratio":%r,'
            '"qty":%d,"seq":%d,"signed":"%s","due":"%s","active":%s}'
            % (i, i % 1000, CITIES[i % 8], i * 1.25, (i % 10000) / 10000.0, i % 1000, i,
               DATES[i % 2000], DATES[i % 2000 + 30], "true" if i % 3 == 0 else "false"))


def percentile(values, q):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def now_ms():
    return int(time.time() * 1000)


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    """User + system CPU seconds of a running process so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


class BenchError(Exception):
    pass


class Worker:
    """A fresh export-worker with its own prefix, stopped (and its keys removed) on exit."""

    def __init__(self, bench, name, pool=32, latency=None, extra_env=None):
        self.bench = bench
        self.r = bench.r
        self.prefix = "bench-%s" % name
        self.id = "bench-%s" % name
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        env.update({
            "EXPORT_REDIS_URL": bench.args.redis_url,
            "EXPORT_PREFIX": self.prefix,
            "EXPORT_POOL_SIZE": str(pool),
            "EXPORT_WORKER_ID": self.id,
            "EXPORT_TMPDIR": bench.args.workdir,
            "EXPORT_LOG_LEVEL": "warn",
            "EXPORT_RESULT_TTL": "600",
        })
        if latency is not None:
            env["EXPORT_SERVICE_TETHER_URL"] = bench.mock(latency) + "/contract/?sn={key}"
        env.update(extra_env or {})
        self.log_path = os.path.join(bench.args.workdir, "worker-%s.log" % name)
        self.log = open(self.log_path, "wb")
        self.events = self.r.pubsub(ignore_subscribe_messages=True)
        self.events.subscribe("%s:events" % self.prefix)
        self.proc = subprocess.Popen([bench.args.worker], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        self.seq = 0
        self.nrows_keys = 0
        deadline = time.monotonic() + 15
        while not self.r.sismember("%s:workers" % self.prefix, self.id):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise BenchError("the worker did not register: %s" % tail)
            time.sleep(0.01)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n=1500):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace").strip() or "(empty log)"

    def hwm_kib(self):
        return vm_hwm_kib(self.proc.pid)

    def cpu_s(self):
        return cpu_s(self.proc.pid)

    def new_id(self):
        self.seq += 1
        return "%s-%d" % (self.prefix, self.seq)

    def status(self, jid):
        st = self.r.hgetall("%s:job:%s" % (self.prefix, jid))
        return {k.decode(): v.decode() for k, v in st.items()}

    def rows_from(self, template):
        """A fresh copy of a template list under this worker's prefix, for rows_key."""
        self.nrows_keys += 1
        key = "%s:rows:%d" % (self.prefix, self.nrows_keys)
        if not self.r.execute_command("COPY", template, key, "REPLACE"):
            raise BenchError("COPY %s failed" % template)
        return key

    def push(self, docs, pipe=None):
        """Writes each job's queued status and LPUSHes it; returns the wall ms just before.

        The documents are serialized first: making their JSON is the
        client's work, not the worker's (about 20 ms for 1,000 small jobs)."""
        p = pipe or self.r.pipeline(transaction=False)
        texts = [json.dumps(doc, separators=(",", ":")) for doc in docs]
        t = now_ms()
        for doc, text in zip(docs, texts):
            p.hset("%s:job:%s" % (self.prefix, doc["id"]),
                   mapping={"state": "queued", "queued_at": t})
            p.lpush("%s:queue" % self.prefix, text)
        p.execute()
        return t

    def run(self, doc, timeout):
        """Runs one job; returns (seconds from LPUSH to succeeded, status)."""
        jid = doc["id"]
        text = json.dumps(doc, separators=(",", ":"))
        status_key = "%s:job:%s" % (self.prefix, jid)
        self.r.hset(status_key, mapping={"state": "queued", "queued_at": now_ms()})
        t0 = time.monotonic()
        self.r.lpush("%s:queue" % self.prefix, text)
        last_poll = t0
        while True:
            msg = self.events.get_message(timeout=0.005)
            now = time.monotonic()
            state = None
            if msg and msg.get("type") == "message":
                m = json.loads(msg["data"])
                if m.get("id") == jid:
                    state = m.get("state")
            if state is None and now - last_poll >= 0.05:
                last_poll = now
                raw = self.r.hget(status_key, "state")
                state = raw.decode() if raw else None
            if state in ("succeeded", "failed", "cancelled"):
                took = time.monotonic() - t0
                st = self.status(jid)
                self.check(jid, st)
                self.r.delete(status_key, st["result_key"])
                return took, st
            if now - t0 > timeout:
                raise BenchError("job %s not done after %.0f s" % (jid, timeout))
            if self.proc.poll() is not None:
                raise BenchError("the worker exited %s" % self.proc.returncode)

    def check(self, jid, st):
        if st.get("state") != "succeeded":
            raise BenchError("job %s ended %s: %s %s" % (jid, st.get("state"),
                                                        st.get("error_code"), st.get("error")))
        if st.get("lookups_failed", "0") != "0":
            raise BenchError("job %s: %s lookups failed" % (jid, st["lookups_failed"]))

    def wait_all(self, jids, timeout):
        """Waits until every job has ended; returns their statuses (all must succeed).

        While they run it only asks for the lengths of the queue and of the
        worker's processing list (both empty once every job has ended), so
        that the waiting costs the two cores next to nothing; the figures come
        from the statuses' finished_at, not from when this noticed."""
        deadline = time.monotonic() + timeout
        lists = ("%s:queue" % self.prefix, "%s:processing:%s" % (self.prefix, self.id))
        while True:
            p = self.r.pipeline(transaction=False)
            for key in lists:
                p.llen(key)
            if sum(p.execute()) == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError("jobs not done after %.0f s" % timeout)
            if self.proc.poll() is not None:
                raise BenchError("the worker exited %s" % self.proc.returncode)
            time.sleep(0.02)
        done = {}
        for jid in jids:
            done[jid] = self.status(jid)
            self.check(jid, done[jid])
        return done

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.events.close()
        self.log.close()
        keys = list(self.r.scan_iter(match=self.prefix + ":*", count=1000))
        for i in range(0, len(keys), 1000):
            self.r.unlink(*keys[i:i + 1000])
        return self.proc.returncode


def run_program(argv):
    """Runs a reference program; returns (wall seconds, its JSON line plus "cpu_s")."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True)
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError("%s exited %d: %s" % (os.path.basename(argv[0]), proc.returncode,
                                               proc.stderr.decode("utf-8", "replace").strip()))
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    out["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, out


def count(n):
    """1000 -> 1k, 1000000 -> 1M, else the number with thousands separators."""
    for div, suffix in ((1000000, "M"), (1000, "k")):
        if n >= div and n % div == 0:
            return "%d%s" % (n // div, suffix)
    return "{:,}".format(n)


def fmt_s(v):
    return "%.2f s" % v if v >= 0.1 else "%.3f s" % v


def fmt_rate(v, unit):
    return "{:,.0f} {}/s".format(v, unit)


def fmt_mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def fmt_mb(n):
    return "%.1f MB" % (n / 1e6)


def med(values):
    return statistics.median(values)


class Bench:
    def __init__(self, args):
        self.args = args
        self.r = redis.Redis.from_url(args.redis_url)
        u = urllib.parse.urlparse(args.redis_url)
        self.redis_host, self.redis_port = u.hostname or "127.0.0.1", u.port or 6379
        self.mocks = {}
        for spec in args.mock:
            ms, url = spec.split("=", 1)
            self.mocks[int(ms)] = url
        self.size = QUICK if args.quick else FULL
        self.rows = []  # (group, label, worker, reference, ratio, rss, details)
        self.failed = 0
        self.templates = {}
        help_text = subprocess.run([args.worker, "--help"], capture_output=True,
                                   text=True).stdout
        self.has_concurrency = "EXPORT_CONCURRENCY" in help_text

    def mock(self, latency):
        if latency not in self.mocks:
            raise BenchError("no mock with %d ms latency (give --mock %d=URL)" % (latency, latency))
        return self.mocks[latency]

    def add(self, group, label, worker="", reference="", ratio="", rss="", details=""):
        self.rows.append((group, label, worker, reference, ratio, rss, details))

    def progress(self, what, run, took, extra="", runs=None):
        log("  %s: run %d/%d %s%s" % (what, run + 1, runs or self.args.runs, fmt_s(took), extra))

    # ---- templates: the rows lists every rows_key job copies from ----

    def template(self, kind, n):
        """Name of a list of n rows (kind "rows": row_json; "keys": {"id": ...} only)."""
        name = "benchtpl:%s:%d" % (kind, n)
        if name in self.templates:
            return name
        t0 = time.monotonic()
        self.r.delete(name)
        chunk = 10000
        p = self.r.pipeline(transaction=False)
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            if kind == "rows":
                items = [row_json(i) for i in range(start, end)]
            else:
                items = ['{"id":"R%07d"}' % i for i in range(start, end)]
            p.rpush(name, *items)
            if len(p) >= 20:
                p.execute()
        p.execute()
        if self.r.llen(name) != n:
            raise BenchError("template %s has %d rows, not %d" % (name, self.r.llen(name), n))
        self.templates[name] = n
        log("  (made %s in %.1f s)" % (name, time.monotonic() - t0))
        return name

    def drop_templates(self):
        for name in self.templates:
            self.r.unlink(name)
        self.templates = {}

    # ---- the scenarios ----

    def lookup_job(self, w, nrows, run):
        """The seed job: inline contracts with distinct keys and two lookup columns."""
        return {
            "id": w.new_id(),
            "sheet": "Contracts",
            "lookup": {"service": "tether", "key": "sn"},
            "columns": [
                {"header": "Contract SN", "field": "sn"},
                {"header": "Amount", "field": "amount", "type": "number",
                 "format": "#,##0.00"},
                {"header": "Signed", "field": "signed_on", "type": "date"},
            ] + LOOKUP_COLUMNS,
            "rows": [{"sn": "B%d-%05d" % (run, i), "amount": i * 1.25,
                      "signed_on": DATES[i % 28]} for i in range(nrows)],
            "result_ttl": 600,
        }

    def mock_call(self, latency, path, method="GET"):
        """The mock's /_stats (or /_reset with POST), as a dict."""
        req = urllib.request.Request(self.mock(latency) + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def limit_rows(self, group, label_fmt, nrows, latency, pools, phase=False):
        """Jobs of @nrows distinct keys against the mock answering after
        @latency ms, at each pool size, against the limit ceil(n/P) x L. The
        figure is the whole job, LPUSH to succeeded; with @phase, the lookup
        phase instead, as the service saw it (its first lookup's arrival to
        its last answer: /_stats' lookup_span_ms), and the whole job in the notes."""
        for pool in pools:
            limit = math.ceil(nrows / pool) * latency / 1000.0
            label = label_fmt % {"n": nrows, "l": latency, "p": pool}
            try:
                times, spans, refs = [], [], []
                with Worker(self, "%s-%d-%d" % (group, latency, pool), pool, latency) as w:
                    for run in range(self.args.runs):
                        self.mock_call(latency, "/_reset", "POST")
                        took, _ = w.run(self.lookup_job(w, nrows, run), self.args.timeout)
                        times.append(took)
                        spans.append(self.mock_call(latency, "/_stats")["lookup_span_ms"] / 1000)
                        # The same requests from curl-multi, the same P in
                        # flight: how near this machine lets anything come to
                        # the limit (with the mock on the same two cores).
                        _, ref = run_program([self.args.curl_multi, self.mock(latency) +
                                              "/contract/?sn={key}", str(nrows), str(pool), "G"])
                        refs.append(ref["seconds"])
                        self.progress(label, run, took, " (lookup phase %s; curl-multi %s)" % (
                            fmt_s(spans[-1]), fmt_s(ref["seconds"])))
                    hwm = w.hwm_kib()
                main, other = (spans, times) if phase else (times, spans)
                self.add(group, label, fmt_s(med(main)), "limit " + fmt_s(limit),
                         "%.2f" % (med(main) / limit), fmt_mib(hwm),
                         "min %s, max %s; %s %s (%.2f); curl-multi, the requests alone: %s "
                         "(%.2f of the limit)" % (
                             fmt_s(min(main)), fmt_s(max(main)),
                             "whole job" if phase else "lookup phase", fmt_s(med(other)),
                             med(other) / limit, fmt_s(med(refs)), med(refs) / limit))
            except BenchError as e:
                self.fail(group, label, e)

    def fail(self, group, label, err):
        self.failed += 1
        log("  %s: FAILED: %s" % (label, err))
        self.add(group, label, "FAILED", details=str(err).replace("\n", " ")[:300])

    def scenario_seed(self):
        self.limit_rows("seed", "seed: %(n)d keys x %(l)d ms, P=%(p)d", 100, 500, [32, 128])

    def scenario_grid(self):
        n = self.size["grid_rows"]
        for latency in (10, 50):
            self.limit_rows("grid", "lookup phase: %(n)d keys x %(l)d ms, P=%(p)d", n,
                            latency, [8, 32, 128], phase=True)

    def scenario_lookups(self):
        self.lookups_rate("", self.mock(0))
        # The same against a service with a CPU share of its own: the kernel's
        # autogroups split the CPU between sessions first, so the worker and
        # the references then have about one core, and their own CPU time
        # per request bounds them.
        if self.args.mock_apart:
            self.lookups_rate(", service in its own session", self.args.mock_apart)

    def lookups_rate(self, where, base):
        n = self.size["lookup_keys"]
        label = "lookups/s: %s keys x 0 ms, P=32%s" % (count(n), where)
        url = base + "/contract/?sn={key}"
        try:
            tpl = self.template("keys", n)
            rates, refs, ratios, ref_rss, cpu, ref_cpu = [], [], [], [], [], []
            blocking = []
            # Its ratio swings the most from run to run (0.70-1.10 on this
            # machine): at least 5 runs, so that the median means something.
            runs = max(self.args.runs, 5)
            with Worker(self, "lookups", 32, extra_env={"EXPORT_SERVICE_TETHER_URL": url}) as w:
                for run in range(runs):
                    doc = {"id": w.new_id(), "lookup": LOOKUP, "rows_key": w.rows_from(tpl),
                           "columns": [COLUMNS10[0]] + LOOKUP_COLUMNS, "result_ttl": 600}
                    c0 = w.cpu_s()
                    took, st = w.run(doc, self.args.timeout)
                    cpu.append(w.cpu_s() - c0)
                    if int(st.get("lookups_done", 0)) != n:
                        raise BenchError("%s of %d lookups done" % (st.get("lookups_done"), n))
                    _, ref = run_program([self.args.curl_multi, url, str(n), "32", "R"])
                    # The same requests as 32 threads of blocking calls: the
                    # floor under the worker's design, not under the machine.
                    _, blk = run_program([self.args.curl_multi, "--threads", url, str(n), "32",
                                          "R"])
                    blocking.append(blk["per_second"] / ref["per_second"])
                    rates.append(n / took)
                    refs.append(ref["per_second"])
                    ref_rss.append(ref["peak_rss_kib"])
                    ref_cpu.append(ref["cpu_s"])
                    ratios.append(rates[-1] / refs[-1])
                    self.progress(label, run, took, " (%s; curl-multi %s)" % (
                        fmt_rate(rates[-1], "keys"), fmt_rate(refs[-1], "req")), runs)
                hwm = w.hwm_kib()
            self.add("lookups", label, fmt_rate(med(rates), "keys"),
                     "curl-multi " + fmt_rate(med(refs), "req"), "%.2f" % med(ratios),
                     fmt_mib(hwm), "whole job, LPUSH to succeeded; CPU %.1f s vs %.1f s; "
                     "curl-multi's RSS %s; 32 threads of blocking curl calls alone: %.2f of "
                     "curl-multi; %d runs, ratios %.2f-%.2f"
                     % (med(cpu), med(ref_cpu), fmt_mib(max(ref_rss)), med(blocking), runs,
                        min(ratios), max(ratios)))
        except BenchError as e:
            self.fail("lookups", label, e)

    def scenario_books(self):
        for n in self.size["book_rows"]:
            label = "workbook: %s rows x 10 columns" % count(n)
            try:
                tpl = self.template("rows", n)
                times, refs, ratios, ref_rss, sizes, ref_sizes = [], [], [], [], [], []
                cpu, ref_cpu = [], []
                with Worker(self, "book-%d" % n, 32) as w:
                    for run in range(self.args.runs):
                        doc = {"id": w.new_id(), "sheet": "Data", "rows_key": w.rows_from(tpl),
                               "columns": COLUMNS10, "result_ttl": 600}
                        c0 = w.cpu_s()
                        took, st = w.run(doc, self.args.timeout)
                        cpu.append(w.cpu_s() - c0)
                        if int(st.get("rows_written", 0)) != n:
                            raise BenchError("%s of %d rows written" % (st.get("rows_written"),
                                                                        n))
                        out = os.path.join(self.args.workdir, "xlsx-loop.xlsx")
                        rtook, ref = run_program(
                            [self.args.xlsx_loop, out, str(n), self.args.workdir])
                        os.unlink(out)
                        times.append(took)
                        refs.append(rtook)
                        ratios.append(took / rtook)
                        ref_rss.append(ref["peak_rss_kib"])
                        ref_cpu.append(ref["cpu_s"])
                        sizes.append(int(st["result_bytes"]))
                        ref_sizes.append(ref["bytes"])
                        self.progress(label, run, took, " (xlsx loop %s)" % fmt_s(rtook))
                    hwm = w.hwm_kib()
                self.add("books", label, "%s, %s" % (fmt_s(med(times)),
                                                     fmt_rate(n / med(times), "rows")),
                         "xlsx loop %s, %s" % (fmt_s(med(refs)), fmt_rate(n / med(refs), "rows")),
                         "%.2f" % med(ratios), fmt_mib(hwm),
                         "result %s (loop %s); CPU %.1f s vs %.1f s; loop's RSS %s"
                         % (fmt_mb(med(sizes)), fmt_mb(med(ref_sizes)), med(cpu), med(ref_cpu),
                            fmt_mib(max(ref_rss))))
            except BenchError as e:
                self.fail("books", label, e)

    def scenario_bigjob(self):
        n = self.size["lookup_rows"]
        label = "workbook: %s rows + 2 lookups x 0 ms, P=32" % count(n)
        try:
            tpl = self.template("rows", n)
            times, cpu = [], []
            with Worker(self, "bigjob", 32, 0) as w:
                for run in range(self.args.runs):
                    doc = {"id": w.new_id(), "sheet": "Data", "lookup": LOOKUP,
                           "rows_key": w.rows_from(tpl), "columns": COLUMNS10 + LOOKUP_COLUMNS,
                           "result_ttl": 600}
                    c0 = w.cpu_s()
                    took, st = w.run(doc, self.args.timeout)
                    cpu.append(w.cpu_s() - c0)
                    if int(st.get("lookups_done", 0)) != n:
                        raise BenchError("%s of %d lookups done" % (st.get("lookups_done"), n))
                    times.append(took)
                    self.progress(label, run, took, " (peak RSS so far %s)" %
                                  fmt_mib(w.hwm_kib()))
                hwm = w.hwm_kib()
            self.add("bigjob", label, "%s, %s" % (fmt_s(med(times)),
                                                  fmt_rate(n / med(times), "rows")),
                     "RSS target %d MiB" % RSS_TARGET_MIB,
                     "%.2f" % (hwm / 1024.0 / RSS_TARGET_MIB), fmt_mib(hwm),
                     "ratio = peak RSS / target, %s; CPU %.1f s" % (
                         "within" if hwm / 1024.0 <= RSS_TARGET_MIB else "OVER", med(cpu)))
        except BenchError as e:
            self.fail("bigjob", label, e)

    def small_doc(self, w, n=10):
        return {"id": w.new_id(), "sheet": "Data", "columns": COLUMNS10,
                "rows": [json.loads(row_json(i)) for i in range(n)], "result_ttl": 600}

    def scenario_mixed(self):
        big, nsmall = self.size["mixed_large"], self.size["mixed_small"]
        for conc in (1, 4):
            label = "mixed: %s rows+lookups, then %d x 10 rows; C=%d" % (count(big), nsmall,
                                                                        conc)
            if conc > 1 and not self.has_concurrency:
                self.add("mixed", label, "n/a (EXPORT_CONCURRENCY not implemented)")
                continue
            try:
                tpl = self.template("rows", big)
                meds, p95s, bigs = [], [], []
                extra = {"EXPORT_CONCURRENCY": str(conc)} if conc > 1 else {}
                with Worker(self, "mixed-%d" % conc, 32, 0, extra) as w:
                    for run in range(self.args.runs):
                        bdoc = {"id": w.new_id(), "sheet": "Data", "lookup": LOOKUP,
                                "rows_key": w.rows_from(tpl),
                                "columns": COLUMNS10 + LOOKUP_COLUMNS, "result_ttl": 600}
                        t_big = w.push([bdoc])
                        deadline = time.monotonic() + 30
                        while w.status(bdoc["id"]).get("state") != "running":
                            if time.monotonic() > deadline:
                                raise BenchError("the large job did not start")
                            time.sleep(0.005)
                        smalls = [self.small_doc(w) for _ in range(nsmall)]
                        t_small = w.push(smalls)
                        st = w.wait_all([bdoc["id"]] + [d["id"] for d in smalls],
                                        self.args.timeout)
                        lat = [(int(st[d["id"]]["finished_at"]) - t_small) / 1000.0
                               for d in smalls]
                        meds.append(med(lat))
                        p95s.append(percentile(lat, 95))
                        bigs.append((int(st[bdoc["id"]]["finished_at"]) - t_big) / 1000.0)
                        self.progress(label, run, bigs[-1], " large; small median %s, p95 %s"
                                      % (fmt_s(meds[-1]), fmt_s(p95s[-1])))
                        for jid in st:
                            w.r.delete("%s:job:%s" % (w.prefix, jid), st[jid]["result_key"])
                    hwm = w.hwm_kib()
                self.add("mixed", label, "median %s, p95 %s" % (fmt_s(med(meds)),
                                                                fmt_s(med(p95s))),
                         "large job %s" % fmt_s(med(bigs)), "", fmt_mib(hwm),
                         "small jobs' latency, LPUSH to finished_at")
            except BenchError as e:
                self.fail("mixed", label, e)

    def small_books(self):
        """Workbooks a second that bare libxlsxwriter makes, one core, of a small
        job's 10 rows: the floor under a small job. On a tmpfs when there is
        one, as the worker keeps a small workbook's files in memory."""
        where = "/dev/shm" if os.access("/dev/shm", os.W_OK) else self.args.workdir
        tmp = tempfile.mkdtemp(prefix="exw-books-", dir=where)
        try:
            _, ref = run_program([self.args.xlsx_loop, "--books", "1000",
                                  os.path.join(tmp, "small.xlsx"), "10", tmp])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ref["books"] / ref["seconds"]

    def scenario_small(self):
        n = self.size["small_jobs"]
        for conc in (1, 8):
            label = "small jobs/s: %s jobs x 10 rows, C=%d" % (count(n), conc)
            if conc > 1 and not self.has_concurrency:
                self.add("small", label, "n/a (EXPORT_CONCURRENCY not implemented)")
                continue
            try:
                rates, refs, ratios, books = [], [], [], []
                extra = {"EXPORT_CONCURRENCY": str(conc)} if conc > 1 else {}
                with Worker(self, "small-%d" % conc, 32, None, extra) as w:
                    for run in range(self.args.runs):
                        docs = [self.small_doc(w) for _ in range(n)]
                        t0 = w.push(docs)
                        st = w.wait_all([d["id"] for d in docs], self.args.timeout)
                        end = max(int(s["finished_at"]) for s in st.values())
                        rates.append(n / ((end - t0) / 1000.0))
                        p = w.r.pipeline(transaction=False)
                        for jid, s in st.items():
                            p.delete("%s:job:%s" % (w.prefix, jid), s["result_key"])
                        p.execute()
                        _, ref = run_program(
                            [self.args.redis_cycles, self.redis_host, str(self.redis_port),
                             str(self.size["redis_cycles"]), "benchref",
                             json.dumps(docs[0], separators=(",", ":"))])
                        refs.append(ref["per_second"])
                        ratios.append(rates[-1] / refs[-1])
                        books.append(self.small_books())
                        self.progress(label, run, (end - t0) / 1000.0, " (%s; Redis %s)" % (
                            fmt_rate(rates[-1], "jobs"), fmt_rate(refs[-1], "cycles")))
                    hwm = w.hwm_kib()
                self.add("small", label, fmt_rate(med(rates), "jobs"),
                         "Redis-only " + fmt_rate(med(refs), "cycles"), "%.3f" % med(ratios),
                         fmt_mib(hwm), "cycle = LPUSH + BLMOVE + LREM, one client; "
                         "libxlsxwriter alone makes {:,.0f} of the same workbook a second on one "
                         "core".format(med(books)))
            except BenchError as e:
                self.fail("small", label, e)

    def scenario_shape(self):
        """An export of the caller's own shape (--shape JOB.json ROWS.jsonl): the
        worker on those rows from rows_key, against bench-xlsx-cells writing the
        same cells with bare libxlsxwriter."""
        try:
            job_path, rows_path = self.args.shape
            with open(job_path) as f:
                job = json.load(f)
            if not isinstance(job, dict) or job.get("lookup") or job.get("rows_key"):
                raise BenchError("%s: give a job's columns (no lookup, no rows_key)" % job_path)
            job.pop("rows", None)
            name = "benchtpl:shape"
            self.r.delete(name)
            n, width = 0, 0
            p = self.r.pipeline(transaction=False)
            with open(rows_path, "rb") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    p.rpush(name, line)
                    n += 1
                    width = max(width, len(line))
                    if len(p) >= 1000:
                        p.execute()
            p.execute()
            self.templates[name] = n
            label = "shape: %s rows x %d columns (%s)" % (count(n), len(job.get("columns", [])),
                                                          os.path.basename(rows_path))
            times, refs, ratios = [], [], []
            with Worker(self, "shape", 32, None) as w:
                for run in range(self.args.runs):
                    doc = dict(job, id=w.new_id(), rows_key=w.rows_from(name), result_ttl=600)
                    took, st = w.run(doc, self.args.timeout)
                    out = os.path.join(self.args.workdir, "shape.xlsx")
                    _, ref = run_program([self.args.xlsx_cells, job_path, rows_path, out,
                                          self.args.workdir])
                    os.unlink(out)
                    times.append(took)
                    refs.append(ref["seconds"])
                    ratios.append(took / ref["seconds"])
                    sizes = (int(st.get("result_bytes", 0)), ref["bytes"])
                    self.progress(label, run, took, " (bare loop %s)" % fmt_s(ref["seconds"]))
                hwm = w.hwm_kib()
            self.add("shape", label, "%s, %s" % (fmt_s(med(times)), fmt_rate(n / med(times), "rows")),
                     "xlsx cells %s" % fmt_s(med(refs)), "%.2f" % med(ratios), fmt_mib(hwm),
                     "rows of up to %d bytes; result %s (loop %s)" % (
                         width, fmt_mb(sizes[0]), fmt_mb(sizes[1])))
        except (BenchError, OSError, ValueError) as e:
            self.fail("shape", "shape: %s" % " ".join(self.args.shape), e)

    # ---- output ----

    def table(self):
        head = ("scenario", "worker", "reference", "worker/ref", "peak RSS", "notes")
        rows = [r[1:] for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        fmt = "  ".join(("%%-%ds" if i in (0, 5) else "%%%ds") % w
                        for i, w in enumerate(widths))
        out = [fmt % head, "  ".join("-" * w for w in widths)]
        out += [(fmt % row).rstrip() for row in rows]
        return "\n".join(out)

    def markdown(self):
        head = ("scenario", "worker", "reference", "worker/ref", "peak RSS", "notes")
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(
            [" --- "] + [" ---: "] * 4 + [" --- "]) + "|"]
        for row in self.rows:
            out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in row[1:]) + " |")
        return "\n".join(out)


def cpu_busy(seconds=1.0):
    """Share of the machine's CPU time busy over the next @seconds, as "12%"."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return "%.0f%%" % (100.0 * (1 - (i1 - i0) / float(max(1, t1 - t0))))


def machine():
    info = {"nproc": os.cpu_count()}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                info["memory"] = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)

    def version(argv, pattern=None):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
        if pattern:
            m = re.search(pattern, out)
            return m.group(1) if m else out
        return out

    deb = ["dpkg-query", "-W", "-f=${Version}"]
    info["libxlsxwriter"] = version(deb + ["libxlsxwriter-dev"])
    info["libcurl"] = version(deb + ["libcurl4-openssl-dev"])
    info["hiredis"] = version(deb + ["libhiredis-dev"])
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", required=True)
    ap.add_argument("--curl-multi", required=True, help="bench-curl-multi")
    ap.add_argument("--xlsx-loop", required=True, help="bench-xlsx-loop")
    ap.add_argument("--redis-cycles", required=True, help="bench-redis-cycles")
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--mock", action="append", default=[], metavar="MS=URL",
                    help="base URL of the mock lookup service answering after MS ms")
    ap.add_argument("--mock-apart", metavar="URL",
                    help="a mock answering at once in a session of its own (lookups/s again)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes (no 1M-row workbook): about 2 minutes")
    ap.add_argument("--only", default=",".join(GROUPS),
                    help="comma-separated groups: " + ",".join(GROUPS))
    ap.add_argument("--shape", nargs=2, metavar=("JOB.json", "ROWS.jsonl"),
                    help="also run a job of this shape: its columns (a job document without "
                    "lookups) and its rows, one JSON object a line; compared with "
                    "bench-xlsx-cells on the same cells. With --only shape, only that")
    ap.add_argument("--xlsx-cells", help="bench-xlsx-cells (for --shape)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per job")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table there (Markdown)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    groups = [g for g in args.only.split(",") if g]
    for g in groups:
        if g not in GROUPS + ["shape"]:
            ap.error("unknown group %r (known: %s)" % (g, ",".join(GROUPS)))
    if args.shape and not args.xlsx_cells:
        ap.error("--shape needs --xlsx-cells")
    if args.shape and "shape" not in groups:
        groups.append("shape")
    if "shape" in groups and not args.shape:
        ap.error("the shape group needs --shape JOB.json ROWS.jsonl")

    bench = Bench(args)
    info = machine()
    info["redis-server"] = bench.r.info("server")["redis_version"]
    busy_before = cpu_busy()
    t_start = time.monotonic()
    try:
        for g in GROUPS + ["shape"]:
            if g in groups:
                log("==> %s" % g)
                getattr(bench, "scenario_" + g)()
    finally:
        bench.drop_templates()
    took = time.monotonic() - t_start

    header = ("%s; %d CPUs (%s), %s; libxlsxwriter %s, libcurl %s, hiredis %s, redis-server %s"
              % (time.strftime("%Y-%m-%d"), info["nproc"], info.get("cpu", "?"),
                 info.get("memory", "?"), info["libxlsxwriter"], info["libcurl"],
                 info["hiredis"], info["redis-server"]))
    footer = ("%d run(s) per figure, median shown; ratios taken within each run; suite took "
              "%.0f s%s; the CPUs were %s busy in the second before it, %s in the second after."
              % (args.runs, took, " (--quick sizes)" if args.quick else "", busy_before,
                 cpu_busy()))
    print()
    print(header)
    print()
    print(bench.table())
    print()
    print(footer)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + bench.markdown() + "\n\n" + footer + "\n")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    # SIGTERM unwinds like an exception, so that every worker started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
