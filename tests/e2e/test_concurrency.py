"""Several jobs per worker (EXPORT_CONCURRENCY, PROTOCOL.md section 4): the
jobs share one lookup pool round robin, so a small job passes a large one;
the heartbeat names them all; SIGTERM puts back every unfinished one; two
documents with one id never run at once on two job threads; and a take whose
reply was lost while other jobs run is adopted without running those twice.

Fairness is asserted by order (how far the large job had got when the small
ones ended), not by the wall clock."""

import datetime
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402
from resp_proxy import RespProxy, command, non_nil_bulk  # noqa: E402

TTL_MS = 2000
ONE_SECOND = datetime.timedelta(seconds=1)


class ConcurrencyTest(RobustTest):

    def heartbeat(self, worker):
        raw = self.r.hgetall(self.key("worker", worker.id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def wait_running(self, jid, timeout=15):
        st = self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=timeout)
        self.assertEqual(st.get("state"), "running", st)
        return st


class Sharing(ConcurrencyTest):

    def test_small_jobs_pass_a_large_one(self):
        mock = self.start_mock(latency_ms=100)
        w = self.start_worker(mock, EXPORT_CONCURRENCY=4, EXPORT_POOL_SIZE=4,
                              EXPORT_HEARTBEAT_TTL_MS=3000)
        big = lookup_job_doc("big", ["B-%04d" % i for i in range(400)])
        self.enqueue(big)
        # Its progress is written while its rows trickle in (workbook.c).
        self.wait_until("the large job's lookups under way in its status",
                        lambda: 8 <= int(self.status("big").get("lookups_done", "0")) < 100,
                        timeout=20, interval=0.02)
        smalls = [lookup_job_doc("small-%d" % i, ["S%d-%02d" % (i, k) for k in range(20)])
                  for i in range(3)]
        for job in smalls:
            self.enqueue(job)
        # While they run the heartbeat names every job, the oldest first.
        beat = self.wait_until(
            "the heartbeat naming several jobs",
            lambda: (lambda b: b if len(b.get("jobs", "").split()) >= 2 else None)(
                self.heartbeat(w)), timeout=10, interval=0.02)
        self.assertEqual(beat.get("job"), "big", beat)
        self.assertIn("big", beat["jobs"].split(), beat)
        done = []
        for job in smalls:
            st = self.wait_state(job["id"], timeout=30)
            self.assert_workbook(st, job)
            done.append(st)
        big_then = self.status("big")
        print("\n  3 small jobs ended with the large one at %s of %s lookups"
              % (big_then.get("lookups_done"), big_then.get("lookups_total")))
        self.assertEqual(big_then.get("state"), "running",
                         "the large job ended before the small ones: %r" % big_then)
        self.assertLess(int(big_then.get("lookups_done", "0")), 200,
                        "the small jobs waited for half the large job's lookups: %r" % big_then)
        st = self.wait_state("big", timeout=60)
        self.assert_workbook(st, big)
        self.assertEqual(mock.lookups(), 400 + 3 * 20, "a key was looked up twice")
        stats = self.stats()
        self.assertEqual(stats.get("jobs_succeeded"), 4, stats)
        self.assertEqual(stats.get("lookups"), 460, stats)
        self.wait_until("an idle heartbeat",
                        lambda: self.heartbeat(w).get("jobs") == "" and
                        self.heartbeat(w).get("job") == "", timeout=5)
        self.assert_queues_empty()

    def test_many_small_jobs(self):
        """Many short jobs through eight job threads: each ends once, with
        its own workbook, and the counters add up."""
        w = self.start_worker(None, EXPORT_CONCURRENCY=8)
        t0 = datetime.datetime.utcnow().replace(microsecond=0)
        jobs = [{"id": "s%03d" % i, "columns": [{"header": "N", "field": "n", "type": "integer"}],
                 "rows": [{"n": i * 10 + k} for k in range(10)]} for i in range(120)]
        for job in jobs:
            self.enqueue(job)
        for job in jobs:
            st = self.wait_state(job["id"], timeout=60)
            self.assertEqual(st.get("state"), "succeeded", st)
            self.assertEqual(st.get("attempts"), "1", st)
            wb = self.workbook(self.result_bytes(st))
            self.assertEqual([c.value for c in wb.active["A"]][1:], [r["n"] for r in job["rows"]])
            # Workbooks packed at once on several threads are each dated
            # right (libxlsxwriter's gmtime(), common/xlsx.c).
            created = wb.properties.created
            self.assertTrue(t0 <= created <= datetime.datetime.utcnow() + ONE_SECOND,
                            "%s: created %s, the test began %s" % (job["id"], created, t0))
        self.assertEqual(self.stats().get("jobs_succeeded"), 120)
        self.wait_until("jobs_done 120 in the heartbeat",
                        lambda: self.heartbeat(w).get("jobs_done") == "120", timeout=5)
        self.assert_queues_empty()


class Shutdown(ConcurrencyTest):

    def test_sigterm_puts_back_every_running_job(self):
        mock = self.start_mock(latency_ms=2000)
        w1 = self.start_worker(mock, EXPORT_CONCURRENCY=3, EXPORT_POOL_SIZE=2,
                               EXPORT_SHUTDOWN_GRACE=1)
        jobs = [lookup_job_doc("long-%d" % i, ["L%d-%02d" % (i, k) for k in range(20)])
                for i in range(3)]
        docs = [self.enqueue(job) for job in jobs]
        for job in jobs:
            self.wait_running(job["id"])
        w1.signal(signal.SIGTERM)
        rc = w1.wait(1 + 10)
        self.assertEqual(rc, 0, "exit status after SIGTERM")
        self.assertEqual(sorted(self.r.lrange(self.key("queue"), 0, -1)), sorted(docs),
                         "not every running document is back on P:queue")
        for job in jobs:
            st = self.status(job["id"])
            self.assertEqual(st.get("state"), "queued", st)
            self.assertEqual(st.get("attempts", "0"), "0", "that start must not count: %r" % st)
        self.assertEqual(self.r.exists(self.key("processing", w1.id)), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), w1.id))
        w2 = self.start_worker(mock, EXPORT_CONCURRENCY=3, EXPORT_POOL_SIZE=64)
        for job in jobs:
            st = self.wait_state(job["id"], timeout=30)
            self.assert_workbook(st, job)
            self.assertEqual(st.get("attempts"), "1", st)
            self.assertEqual(st.get("worker"), w2.id, st)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()


class OneIdAtATime(ConcurrencyTest):

    def test_copies_of_one_id_on_one_worker(self):
        """An equal copy is dropped while the first runs; another document
        with the same id waits in the queue and runs after it."""
        mock = self.start_mock(latency_ms=300)
        w = self.start_worker(mock, EXPORT_CONCURRENCY=4, EXPORT_POOL_SIZE=4)
        first = lookup_job_doc("dup", ["D-%02d" % k for k in range(24)])
        other = lookup_job_doc("dup", ["E-%02d" % k for k in range(4)])
        self.enqueue(first)
        self.wait_running("dup")
        # Pushed again as they are, the status left alone (a backend's retry).
        self.enqueue(first, status=False)
        self.enqueue(other, status=False)
        self.wait_until("the equal copy dropped",
                        lambda: "this duplicate is dropped" in w.log(), timeout=10)
        self.wait_until("the other document deferred",
                        lambda: "waits at the end of the queue" in w.log(), timeout=10)
        self.wait_until("both ended", lambda: self.stats().get("jobs_succeeded") == 2,
                        timeout=60)
        st = self.status("dup")
        self.assert_workbook(st, other)  # the later document ran last
        self.assertEqual(mock.lookups(), 24 + 4, "a key was looked up twice")
        self.assertIn("another job thread of this worker", w.log())
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()


class LostTake(ConcurrencyTest):

    def test_take_reply_lost_while_a_job_runs(self):
        """The reply to the take of B is lost while A runs on another job
        thread: B is adopted from the processing list, A is not run again."""
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = RespProxy(port)
        self._at_end.append(proxy.stop)
        mock = self.start_mock(latency_ms=200)
        w = self.start_worker(mock, EXPORT_REDIS_URL=proxy.url(), EXPORT_CONCURRENCY=3,
                              EXPORT_POOL_SIZE=2, EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(w, timeout=10)
        a = lookup_job_doc("a", ["A-%02d" % k for k in range(20)])
        b = lookup_job_doc("b", ["B-%02d" % k for k in range(4)])
        self.enqueue(a)
        self.wait_running("a")
        rule = proxy.drop_reply_and_close(command("BLMOVE"), reply=non_nil_bulk, times=1)
        self.enqueue(b)
        if not rule.fired.wait(10):
            self.fail("the proxy never dropped a BLMOVE reply")
        st_b = self.wait_state("b", timeout=2 * TTL_MS / 1000.0 + 20)
        self.assert_workbook(st_b, b)
        self.assertEqual(self.status("a").get("state"), "running",
                         "a ended before b was adopted: the test proves nothing")
        st_a = self.wait_state("a", timeout=30)
        self.assert_workbook(st_a, a)
        for st in (st_a, st_b):
            self.assertEqual(st.get("attempts"), "1", st)
        self.assertEqual(mock.lookups(), 24, "a key was looked up twice: a job ran twice")
        self.assertIn("running a job found in this worker's own processing list", w.log())
        time.sleep(1)
        self.assertEqual(self.stats().get("jobs_succeeded"), 2)
        self.assert_queues_empty()


class Configuration(ConcurrencyTest):

    def test_help_and_bounds(self):
        rc, out = self.run_worker_once(["--help"])
        self.assertEqual(rc, 0)
        self.assertIn("EXPORT_CONCURRENCY", out)
        env = self.worker_env(EXPORT_CONCURRENCY=0)
        rc, out = self.run_worker_once(env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn("EXPORT_CONCURRENCY", out)
        env = self.worker_env(EXPORT_CONCURRENCY=65)
        rc, out = self.run_worker_once(env=env)
        self.assertEqual(rc, 2, out)
        w = self.start_worker(None, EXPORT_CONCURRENCY=5)
        self.wait_registered(w)
        line = self.wait_until("the start-up line",
                               lambda: next((json.loads(x) for x in w.log().splitlines()
                                             if "concurrency=5" in x), None), timeout=5)
        self.assertIn("concurrency=5", json.dumps(line))


if __name__ == "__main__":
    harness.main()
