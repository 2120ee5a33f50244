"""GET /metrics and GET /healthz on EXPORT_METRICS_ADDR (PROTOCOL.md section 4,
"Metrics and health"): the metrics, read with Debian's prometheus_client
parser, during a job and after, agree with what the worker added to P:stats;
every outcome is there at 0 from the start; the histograms count each job
ended and each HTTP request; the gauges follow the running job, the pool and
the queue; a recovered job counts as requeued; /healthz turns 503 with the
reason while Redis is away and 200 again when it is back; other paths are 404,
other methods 405; a bad address stops the worker with exit status 2, a port
in use with a clear message."""

import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTCOMES = ("succeeded", "failed", "cancelled", "dead", "requeued")
FAMILIES = {
    "export_worker_info": "gauge",
    "export_jobs_total": "counter",
    "export_job_duration_seconds": "histogram",
    "export_jobs_running": "gauge",
    "export_lookups_total": "counter",
    "export_lookup_requests_total": "counter",
    "export_lookup_duration_seconds": "histogram",
    "export_pool_threads": "gauge",
    "export_pool_busy_threads": "gauge",
    "export_queue_length": "gauge",
    "export_result_bytes_total": "counter",
    "export_redis_reconnects_total": "counter",
}


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(export-worker VERSION ([0-9.]+)", f.read())
    return m.group(1)


class Scrape:
    """One /metrics text, parsed: samples by name and labels."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            self.types[fam.name] = fam.type
            for s in fam.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def total(self, name, **labels):
        """The sum of every sample of @name whose labels include @labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def labelled(self, name):
        return [dict(ls) for (n, ls), _ in self.samples.items() if n == name]


class MetricsTest(RobustTest):

    def start_metrics_worker(self, mock=None, **env):
        """A worker serving metrics on a free port: (worker, base URL)."""
        w = self.start_worker(mock, EXPORT_METRICS_ADDR="127.0.0.1:0", **env)
        m = self.wait_until(
            "the worker's 'serving metrics' line",
            lambda: re.search(r"serving metrics on http://(127\.0\.0\.1:\d+)/metrics", w.log())
            or (not w.running() and self.fail("worker exited: %s" % w.log())),
            timeout=20)
        return w, "http://" + m.group(1)

    def get(self, base, path="/metrics", method="GET"):
        """(status, body text, headers) of one request."""
        req = urllib.request.Request(base + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode(), resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), e.headers

    def scrape(self, base):
        status, text, headers = self.get(base)
        self.assertEqual(status, 200, text)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"),
                        headers["Content-Type"])
        return Scrape(text)


class Counting(MetricsTest):

    def test_counts_match_stats(self):
        mock = self.start_mock("--fail", "NF-*=404", "--fail", "SU-*=503", latency_ms=400)
        w, base = self.start_metrics_worker(mock, EXPORT_POOL_SIZE=4,
                                            EXPORT_HEARTBEAT_TTL_MS=3000,
                                            EXPORT_SERVICE_TETHER_RETRIES=1,
                                            EXPORT_SERVICE_BILLING_URL=mock.url())
        start_line = [line for line in w.log().splitlines() if "starting export-worker" in line]
        self.assertTrue(start_line and "metrics-addr=127.0.0.1:0" in start_line[0], start_line)

        # At the start: every family, typed; every outcome at 0; the services.
        # (The endpoint serves from before the lookup threads start: wait
        # until all four count themselves.)
        self.wait_until("the 4 lookup threads counted", lambda: self.scrape(base).get(
            "export_pool_threads") == 4)
        s = self.scrape(base)
        for name, kind in FAMILIES.items():
            self.assertIn("# TYPE %s %s\n" % (name, kind), s.text)
            self.assertIn("# HELP %s " % name, s.text)
        for outcome in OUTCOMES:
            self.assertEqual(s.get("export_jobs_total", outcome=outcome), 0, outcome)
        self.assertEqual(s.get("export_worker_info", version=project_version(), worker=w.id), 1)
        self.assertEqual(s.get("export_pool_threads"), 4)
        self.assertEqual(s.get("export_pool_busy_threads"), 0)
        self.assertEqual(s.get("export_jobs_running"), 0)
        self.assertEqual(s.get("export_job_duration_seconds_count"), 0)
        for svc in ("tether", "billing"):
            for result in ("ok", "error"):
                self.assertEqual(s.get("export_lookups_total", service=svc, result=result), 0)
            for code in ("timeout", "connect"):
                self.assertEqual(
                    s.get("export_lookup_requests_total", service=svc, code=code), 0)
            self.assertEqual(s.get("export_lookup_duration_seconds_bucket", service=svc,
                                   le="+Inf"), 0)

        # A: 60 keys that answer, two that are 404 (final), one that is 503
        # (retried once); under blank it succeeds, in 16 rounds of 400 ms.
        keys_a = ["OK-%02d" % i for i in range(60)] + ["NF-1", "NF-2", "SU-1"]
        job_a = lookup_job_doc("met-a", keys_a, on_lookup_error="blank")
        self.enqueue(job_a)
        self.wait_state("met-a", ("running",) + harness.TERMINAL, timeout=20)
        mid = self.wait_until(
            "lookups under way in /metrics",
            lambda: (lambda m: m if m.get("export_pool_busy_threads") > 0
                     and m.total("export_lookup_requests_total") > 0 else None)(
                self.scrape(base)), timeout=20, interval=0.05)
        self.assertEqual(mid.get("export_jobs_running"), 1)
        self.assertLessEqual(mid.get("export_pool_busy_threads"), 4)
        self.assertEqual(mid.total("export_jobs_total"), 0)
        # One scrape renders the request counts before the durations, and
        # requests end meanwhile: mid-run the two may differ by what the 4
        # threads finish during the scrape (they agree once the job ends, below).
        self.assertLessEqual(abs(mid.total("export_lookup_duration_seconds_count") -
                                 mid.total("export_lookup_requests_total")), 4)

        # B fails on a 404 under fail; C is cancelled before it starts; D has
        # no usable id (a dead letter); E has no lookups. Queued behind A.
        self.enqueue(lookup_job_doc("met-b", ["OK-B1", "NF-B"], on_lookup_error="fail"))
        self.enqueue(lookup_job_doc("met-c", ["OK-C1"]), cancel="1")
        self.enqueue(b"this is not json", status=False)
        job_e = {"id": "met-e", "columns": [{"header": "N", "field": "n", "type": "integer"}],
                 "rows": [{"n": i} for i in range(3)]}
        self.enqueue(job_e)
        self.wait_until("export_queue_length 4 while A runs",
                        lambda: self.scrape(base).get("export_queue_length") == 4, timeout=15)
        self.assertEqual(self.status("met-a").get("state"), "running",
                         "A ended before the queue's length was seen")

        for jid, want in (("met-a", "succeeded"), ("met-b", "failed"), ("met-c", "cancelled"),
                          ("met-e", "succeeded")):
            st = self.wait_state(jid, timeout=60)
            self.assertEqual(st.get("state"), want, st)
        self.wait_until("the dead letter", lambda: self.r.llen(self.key("dead")) == 1)
        # The gauges settle with the end and the next heartbeat.
        s = self.wait_until(
            "the worker idle in /metrics",
            lambda: (lambda m: m if m.get("export_jobs_running") == 0
                     and m.get("export_queue_length") == 0 else None)(self.scrape(base)),
            timeout=15)
        stats = self.stats()

        # Jobs: as P:stats, outcome by outcome; one duration per job ended.
        for outcome in ("succeeded", "failed", "cancelled", "dead"):
            self.assertEqual(s.get("export_jobs_total", outcome=outcome),
                             stats.get("jobs_" + outcome, 0), outcome)
        self.assertEqual((stats["jobs_succeeded"], stats["jobs_failed"],
                          stats["jobs_cancelled"], stats["jobs_dead"]), (2, 1, 1, 1), stats)
        self.assertEqual(s.get("export_jobs_total", outcome="requeued"), 0)
        self.assertEqual(s.get("export_job_duration_seconds_count"), 5)
        self.assertEqual(s.get("export_job_duration_seconds_bucket", le="+Inf"), 5)
        self.assertGreater(s.get("export_job_duration_seconds_sum"), 5.0)  # A alone takes 6 s
        buckets = [(float(ls["le"]), s.get("export_job_duration_seconds_bucket", **ls))
                   for ls in s.labelled("export_job_duration_seconds_bucket")]
        counts = [c for _, c in sorted(buckets)]
        self.assertEqual(counts, sorted(counts), "buckets not cumulative: %r" % buckets)

        # Lookups and requests: as P:stats; the codes as the mock answered.
        self.assertEqual(s.total("export_lookups_total", service="tether"), stats["lookups"])
        self.assertEqual(s.get("export_lookups_total", service="tether", result="error"),
                         stats["lookup_errors"])
        self.assertGreaterEqual(stats["lookup_errors"], 4)  # A's 3 and B's one
        self.assertEqual(s.total("export_lookups_total", service="billing"), 0)
        self.assertEqual(s.total("export_lookup_requests_total"), stats["lookup_requests"])
        self.assertEqual(s.total("export_lookup_requests_total"), mock.lookups())
        self.assertEqual(s.get("export_lookup_requests_total", service="tether", code="503"), 2)
        self.assertGreaterEqual(
            s.get("export_lookup_requests_total", service="tether", code="404"), 3)
        self.assertGreaterEqual(
            s.get("export_lookup_requests_total", service="tether", code="200"), 60)
        self.assertEqual(s.get("export_lookup_duration_seconds_count", service="tether"),
                         stats["lookup_requests"])
        # Every answer took 400 ms; only a request B's end cut short took less.
        aborted = s.get("export_lookup_requests_total", service="tether", code="aborted")
        self.assertLessEqual(s.get("export_lookup_duration_seconds_bucket", service="tether",
                                   le="0.25"), aborted)
        self.assertGreaterEqual(s.get("export_lookup_duration_seconds_sum", service="tether"),
                                0.38 * (stats["lookup_requests"] - aborted))

        # Bytes, the pool, the queue.
        self.assertEqual(s.get("export_result_bytes_total"), stats["bytes_out"])
        self.assertEqual(s.get("export_pool_busy_threads"), 0)
        self.assertEqual(s.get("export_pool_threads"), 4)
        self.assertEqual(s.get("export_redis_reconnects_total"), 0)

    def test_recovered_job_counts_as_requeued(self):
        mock = self.start_mock(latency_ms=1000)
        a = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=1000, EXPORT_POOL_SIZE=2)
        job = lookup_job_doc("met-rec", ["R-%d" % i for i in range(6)])
        self.enqueue(job)
        self.wait_state("met-rec", ("running",), timeout=20)
        a.kill9()
        self.assertNotIn("serving metrics", a.log())  # off unless asked for
        # Only the dead worker's TTL needs to be short; the survivor's is not,
        # so that a busy machine cannot make it lapse too (a second requeue).
        b, base = self.start_metrics_worker(mock, EXPORT_HEARTBEAT_TTL_MS=4000,
                                            EXPORT_POOL_SIZE=2)
        self.wait_until("the recovery in /metrics",
                        lambda: self.scrape(base).get("export_jobs_total",
                                                      outcome="requeued") == 1, timeout=20)
        st = self.wait_state("met-rec", timeout=60)
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertEqual(st.get("worker"), b.id, st)
        s = self.wait_until(
            "the job's end in /metrics",
            lambda: (lambda m: m if m.get("export_jobs_total", outcome="succeeded") == 1
                     else None)(self.scrape(base)), timeout=10)
        self.assertEqual(s.get("export_jobs_total", outcome="requeued"), 1)
        self.assertEqual(s.get("export_job_duration_seconds_count"), 1)


class Health(MetricsTest):

    def test_healthz_follows_redis(self):
        server = self.use_own_redis()
        w, base = self.start_metrics_worker(None, EXPORT_HEARTBEAT_TTL_MS=1000)
        self.wait_registered(w)
        status, body, headers = self.get(base, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        self.assertTrue(headers["Content-Type"].startswith("text/plain"), headers)

        server.stop()
        status, body = self.wait_until(
            "/healthz 503 with Redis away",
            lambda: (lambda r: r[:2] if r[0] == 503 else None)(self.get(base, "/healthz")),
            timeout=15)
        self.assertIn("Redis has not answered", body)
        self.assertIn("heartbeat TTL", body)
        # /metrics still answers meanwhile, without Redis.
        self.assertEqual(self.scrape(base).get("export_worker_info", version=project_version(),
                                               worker=w.id), 1)

        server.start()
        self.wait_until("/healthz 200 with Redis back",
                        lambda: self.get(base, "/healthz")[:2] == (200, "ok\n"), timeout=15)
        self.assertGreaterEqual(self.scrape(base).get("export_redis_reconnects_total"), 1)

    def test_paths_and_methods(self):
        w, base = self.start_metrics_worker(None)
        for path in ("/", "/metrics/", "/health", "/healthz/x", "/favicon.ico"):
            status, _, _ = self.get(base, path)
            self.assertEqual(status, 404, path)
        for method in ("POST", "PUT", "DELETE"):
            for path in ("/metrics", "/healthz"):
                status, _, headers = self.get(base, path, method)
                self.assertEqual(status, 405, (method, path))
                self.assertIn("GET", headers.get("Allow", ""), (method, path))
        status, body, _ = self.get(base, "/metrics", "HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertTrue(w.running())


class StartUp(MetricsTest):

    def test_bad_address_exits_2(self):
        for addr, words in (("9100", "must be HOST:PORT"),
                            ("127.0.0.1:70000", "port must be 0 to 65535"),
                            ("::1:9100", "needs brackets"),
                            ("no-such-host.invalid:9100", "cannot resolve")):
            env = self.worker_env(None, EXPORT_METRICS_ADDR=addr)
            rc, out = self.run_worker_once(env=env)
            self.assertEqual(rc, 2, "%s: %s" % (addr, out))
            self.assertIn("EXPORT_METRICS_ADDR", out, addr)
            self.assertIn(words, out, addr)
        rc, out = self.run_worker_once(args=["--metrics-addr", "localhost"],
                                       env=self.worker_env(None))
        self.assertEqual(rc, 2, out)
        self.assertIn("--metrics-addr: must be HOST:PORT", out)

    def test_port_in_use(self):
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            env = self.worker_env(None, EXPORT_METRICS_ADDR="127.0.0.1:%d" % port)
            t0 = time.monotonic()
            rc, out = self.run_worker_once(env=env, timeout=20)
            self.assertNotIn(rc, (0, 2), out)
            self.assertIn("cannot serve metrics on 127.0.0.1:%d: Address already in use" % port,
                          out)
            self.assertLess(time.monotonic() - t0, 10)
            # It never registered: it stopped before it took a job.
            self.assertFalse(self.r.sismember(self.key("workers"), env["EXPORT_WORKER_ID"]))
        finally:
            busy.close()

    def test_sigterm_with_metrics_exits_0(self):
        w, base = self.start_metrics_worker(None)
        self.wait_registered(w)
        self.assertEqual(self.get(base, "/healthz")[0], 200)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(20), 0, w.log())
        with self.assertRaises(OSError):
            urllib.request.urlopen(base + "/healthz", timeout=5)


if __name__ == "__main__":
    harness.main()
