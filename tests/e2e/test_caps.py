"""Fleet-wide caps on a lookup service (EXPORT_SERVICE_<NAME>_MAX_INFLIGHT
and _RATE; PROTOCOL.md section 4), checked by the mock service, which records
its requests in flight and its arrivals in every one-second window: across
four workers at pool 32, the service never sees more than _MAX_INFLIGHT
requests at once nor more than _RATE in any second (within 10 %), even while
a worker is killed mid-run, and the jobs' results do not change. A dead
worker's permits come back within _TIMEOUT_MS + 5 s. Slow: labelled so in
tests/e2e/CMakeLists.txt, it runs in the plain build only."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import lookup_job_doc  # noqa: E402
from test_limits import LimitsTest  # noqa: E402


class Caps(LimitsTest):

    def test_caps_hold_across_four_workers_with_one_killed(self):
        # At 250 ms the cap allows 32 requests a second: both caps bind by turns.
        cap, rate = 8, 30
        mock = self.start_mock(latency_ms=250)
        env = dict(EXPORT_POOL_SIZE=32, EXPORT_CONCURRENCY=2, EXPORT_HEARTBEAT_TTL_MS=2000,
                   EXPORT_SERVICE_TETHER_MAX_INFLIGHT=cap, EXPORT_SERVICE_TETHER_RATE=rate,
                   EXPORT_SERVICE_TETHER_TIMEOUT_MS=2000)
        workers = [self.start_worker(mock, **env) for _ in range(4)]
        for w in workers:
            self.wait_registered(w)
        jobs = {}
        for n in range(8):
            jid = "capped-%d" % n
            keys = ["J%d-%03d" % (n, i) for i in range(60)]
            jobs[jid] = lookup_job_doc(jid, keys + keys[:5])
            self.enqueue(jobs[jid])
        # Kill a worker that is running a job, in the middle of the run.
        time.sleep(3)
        victim = next((w for w in workers
                       if self.r.hget(self.key("worker", w.id), "job")), workers[0])
        held = len(self.live_permits(victim.id + ":"))
        victim.kill9()
        killed_at = time.monotonic()
        statuses = self.wait_all(list(jobs), timeout=120)
        took = time.monotonic() - killed_at + 3
        for jid, st in statuses.items():
            self.assert_workbook(st, jobs[jid])
        s = mock.stats()
        print("\n  cap %d, rate %d/s, 4 workers at pool 32, one killed (it held %d permits): "
              "%d requests in %.1f s; most in flight %d, most in any second %d, most in a "
              "whole second %d" % (cap, rate, held, s["lookups"], took, s["max_in_flight"],
                                   s["max_in_any_second"], s["max_per_second"]))
        self.assertLessEqual(s["max_in_flight"], cap, s)
        self.assertLessEqual(s["max_in_any_second"], rate * 1.1, s)
        self.assertGreaterEqual(s["lookups"], 8 * 60)
        self.assertEqual(set(s["by_status"]), {"200"}, s)

    def test_a_dead_workers_permits_come_back(self):
        cap, timeout_ms = 4, 1500
        mock = self.start_mock(latency_ms=1000)
        env = dict(EXPORT_POOL_SIZE=8, EXPORT_SERVICE_TETHER_MAX_INFLIGHT=cap,
                   EXPORT_SERVICE_TETHER_TIMEOUT_MS=timeout_ms, EXPORT_HEARTBEAT_TTL_MS=10000)
        a = self.start_worker(mock, **env)
        self.wait_registered(a)
        self.enqueue(lookup_job_doc("on-a", ["A-%d" % i for i in range(40)]))
        self.wait_until("worker a to hold every permit",
                        lambda: len(self.live_permits(a.id + ":")) == cap, timeout=10)
        a.kill9()
        killed = time.monotonic()
        b = self.start_worker(mock, **env)
        self.wait_registered(b)
        job = lookup_job_doc("on-b", ["B-%d" % i for i in range(8)])
        self.enqueue(job)
        self.wait_until("a's permits to lapse", lambda: not self.live_permits(a.id + ":"),
                        timeout=(timeout_ms + 5000) / 1000 + 2, interval=0.02)
        back = time.monotonic() - killed
        self.wait_until("b to take permits", lambda: self.live_permits(b.id + ":"), timeout=2)
        print("\n  a dead worker's %d permits came back after %.2f s (timeout %d ms + 5 s = "
              "%.1f s)" % (cap, back, timeout_ms, timeout_ms / 1000 + 5))
        self.assertLessEqual(back, timeout_ms / 1000 + 5 + 0.5)
        st = self.wait_state("on-b", timeout=30)
        self.assert_workbook(st, job)
        self.assertLessEqual(mock.stats()["max_in_flight"], cap)


if __name__ == "__main__":
    harness.main()
