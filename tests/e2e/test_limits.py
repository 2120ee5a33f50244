"""Fleet-wide caps on a lookup service (EXPORT_SERVICE_<NAME>_MAX_INFLIGHT
and _RATE; PROTOCOL.md section 4), on one or two workers: waiting for a
permit counts against the job's deadline, and a cancel or a stop ends it (the
stop gives the permits back); the rate holds across two workers; the metrics
show permits in use, the time spent waiting for one, and the requests the
rate held back. The fleet of four with a worker killed is test_caps.py."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import lookup_job_doc  # noqa: E402
from test_metrics import MetricsTest  # noqa: E402


class LimitsTest(MetricsTest):
    """What the tests of the caps share (test_caps.py too)."""

    def redis_ms(self):
        sec, usec = self.r.time()
        return sec * 1000 + usec // 1000

    def live_permits(self, holder_prefix=""):
        """Permits of service tether whose lease has not run out (by Redis's
        clock), of holders whose name begins with @holder_prefix."""
        key = self.key("limit", "tether", "permits")
        now = self.redis_ms()
        return [m.decode() for m, _ in self.r.zrangebyscore(key, "(%d" % now, "+inf",
                                                              withscores=True)
                if m.decode().startswith(holder_prefix)]


class Limits(LimitsTest):

    def test_waiting_counts_against_the_deadline(self):
        mock = self.start_mock(latency_ms=1000)
        self.start_worker(mock, EXPORT_POOL_SIZE=8, EXPORT_JOB_TIMEOUT=3,
                          EXPORT_SERVICE_TETHER_MAX_INFLIGHT=1)
        t0 = time.monotonic()
        st = self.run_job(lookup_job_doc("slow", ["D-%d" % i for i in range(30)]),
                          timeout=20, expect="failed")
        took = time.monotonic() - t0
        self.assertEqual(st.get("error_code"), "timeout", st)
        self.assertLess(took, 7, "waiting for permits outlived the job's deadline")
        self.assertLessEqual(mock.stats()["max_in_flight"], 1)

    def test_cancel_and_stop_end_the_wait(self):
        mock = self.start_mock(latency_ms=1000)
        w = self.start_worker(mock, EXPORT_POOL_SIZE=8, EXPORT_SHUTDOWN_GRACE=1,
                              EXPORT_SERVICE_TETHER_MAX_INFLIGHT=1,
                              EXPORT_SERVICE_TETHER_RATE=1)
        self.wait_registered(w)
        self.enqueue(lookup_job_doc("cancel-me", ["C-%d" % i for i in range(30)]))
        self.wait_state("cancel-me", states=("running",), timeout=10)
        time.sleep(1)
        self.r.hset(self.key("job", "cancel-me"), "cancel", "1")
        t0 = time.monotonic()
        st = self.wait_state("cancel-me", timeout=10)
        self.assertEqual(st.get("state"), "cancelled")
        self.assertLess(time.monotonic() - t0, 3.5)

        self.enqueue(lookup_job_doc("stop-me", ["S-%d" % i for i in range(30)]))
        self.wait_state("stop-me", states=("running",), timeout=10)
        time.sleep(0.5)
        rc, took = w.stop()
        self.assertEqual(rc, 0, w.log())
        self.assertLess(took, 6, "the stop waited for permits")
        self.assertEqual(self.status("stop-me").get("state"), "queued")
        # The stop gave its permits back at once.
        self.assertEqual(self.live_permits(), [])

    def test_rate_alone_and_the_metrics(self):
        rate = 25
        mock = self.start_mock(latency_ms=0)
        w1, base = self.start_metrics_worker(mock, EXPORT_SERVICE_TETHER_RATE=rate)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_RATE=rate,
                          EXPORT_SERVICE_TETHER_MAX_INFLIGHT=3)
        jobs = {}
        for n in range(4):
            jid = "paced-%d" % n
            jobs[jid] = lookup_job_doc(jid, ["P%d-%d" % (n, i) for i in range(40)])
            self.enqueue(jobs[jid])
        t0 = time.monotonic()
        statuses = self.wait_all(list(jobs), timeout=60)
        took = time.monotonic() - t0
        for jid, st in statuses.items():
            self.assert_workbook(st, jobs[jid])
        s = mock.stats()
        print("\n  rate %d/s, 160 requests from 2 workers in %.1f s: most in any second %d, "
              "per whole second %s" % (rate, took, s["max_in_any_second"],
                                       s["arrivals_per_second"]))
        self.assertLessEqual(s["max_in_any_second"], rate * 1.1, s)
        self.assertGreater(took, 160 / rate * 0.8)
        m = self.scrape(base)
        self.assertGreater(m.get("export_lookup_rate_delayed_total", service="tether"), 0)
        self.assertEqual(m.get("export_lookup_permits_in_use", service="tether"), 0)
        self.assertEqual(m.get("export_lookup_permit_wait_seconds_count", service="tether"), 0)

    def test_permit_metrics(self):
        mock = self.start_mock(latency_ms=300)
        w, base = self.start_metrics_worker(mock, EXPORT_POOL_SIZE=8,
                                            EXPORT_SERVICE_TETHER_MAX_INFLIGHT=2)
        self.enqueue(lookup_job_doc("m", ["M-%d" % i for i in range(12)]))
        self.wait_state("m", states=("running",), timeout=10)
        seen = self.wait_until(
            "two permits in use",
            lambda: self.scrape(base).get("export_lookup_permits_in_use", service="tether") == 2,
            timeout=10, interval=0.05)
        self.assertTrue(seen)
        st = self.wait_state("m", timeout=30)
        self.assertEqual(st.get("state"), "succeeded")
        m = self.scrape(base)
        self.assertEqual(m.get("export_lookup_permit_wait_seconds_count", service="tether"), 12)
        self.assertGreater(m.get("export_lookup_permit_wait_seconds_sum", service="tether"), 1)
        self.assertEqual(m.get("export_lookup_permits_in_use", service="tether"), 0)
        self.assertLessEqual(mock.stats()["max_in_flight"], 2)


if __name__ == "__main__":
    harness.main()
