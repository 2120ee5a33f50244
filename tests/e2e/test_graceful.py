"""Stopping workers cleanly (PROTOCOL.md section 4, Signals): a job that
fits in EXPORT_SHUTDOWN_GRACE finishes and the worker exits as soon as it
has; one that does not goes back on P:queue at the end taken next, its start
not counted, whether the signal is SIGTERM or SIGINT; the default-sized grace
fits in Docker's 10 s stop timeout; a rolling restart loses and counts
nothing; a worker stopped while Redis is down exits and its job is not lost.

test_lifecycle.py's Shutdown tests cover a short job finishing, a first
start put back after SIGTERM, and an idle worker; these build on them."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402


def slow_job(jid, nkeys):
    """With EXPORT_POOL_SIZE=1 and a 1 s mock: nkeys seconds of lookups."""
    return lookup_job_doc(jid, ["%s-%02d" % (jid.upper(), i) for i in range(nkeys)])


class Graceful(RobustTest):

    def stop_with(self, sig, worker, grace, slack=3.0):
        """Sends @sig; asserts exit 0 within @grace + @slack: the seconds taken."""
        t0 = time.monotonic()
        worker.signal(sig)
        rc = worker.wait(grace + slack + 5)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status %r %.1f s after %s" % (rc, took, sig.name))
        self.assertLess(took, grace + slack, "exit %.1f s after %s with a %s s grace"
                        % (took, sig.name, grace))
        self.assertEqual(self.r.exists(self.key("worker", worker.id)), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), worker.id))
        self.assertEqual(self.r.exists(self.key("processing", worker.id)), 0)
        return took

    def assert_put_back(self, jid, doc, attempts):
        self.assertEqual(self.r.lrange(self.key("queue"), -1, -1), [doc],
                         "the document is not back on P:queue at the end taken next")
        st = self.status(jid)
        self.assertEqual(st["state"], "queued", st)
        self.assertEqual(st.get("progress"), "0", st)
        self.assertEqual(st.get("attempts", "0"), attempts,
                         "the put-back start must not count: %r" % st)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assertEqual(self.upload_keys(), {})

    def test_sigterm_long_job_finishes_within_the_grace(self):
        # About 5 s of lookups left when SIGTERM comes, 8 s of grace: the
        # job finishes, and the worker exits right after it, not at the end
        # of the grace.
        mock = self.start_mock(latency_ms=1000)
        w = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=8)
        job = slow_job("long-ok", 6)
        self.enqueue(job)
        self.wait_state(job["id"], ("running",), timeout=10)
        time.sleep(0.8)
        took = self.stop_with(signal.SIGTERM, w, 8)
        st = self.status(job["id"])
        self.assert_workbook(st, job)
        self.assertEqual(st["attempts"], "1")
        t_exit_ms = harness.now_ms()
        print("\n  exit %.1f s after SIGTERM; job finished %.2f s before the exit"
              % (took, (t_exit_ms - int(st["finished_at"])) / 1000.0))
        self.assertGreater(took, 3.0, "the job cannot have finished so soon")
        self.assertLess(t_exit_ms - int(st["finished_at"]), 2000,
                        "the worker lingered after its job ended")

    def test_sigterm_put_back_keeps_earlier_attempts(self):
        # A job already started once before (a crash) is put back: attempts
        # goes back to 1, not 2 nor 0; the next start counts 2.
        mock = self.start_mock(latency_ms=1000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=1)
        job = slow_job("again", 10)
        doc = self.enqueue(job, attempts="1")
        st = self.wait_state(job["id"], ("running",), timeout=10)
        self.assertEqual(st["attempts"], "2", st)
        time.sleep(0.5)
        self.stop_with(signal.SIGTERM, a, 1)
        self.assert_put_back(job["id"], doc, attempts="1")
        b = self.start_worker(mock, EXPORT_POOL_SIZE=16)
        st = self.wait_state(job["id"], timeout=20)
        self.assert_workbook(st, job)
        self.assertEqual(st["attempts"], "2", st)
        self.assertEqual(st["worker"], b.id, st)

    def test_sigint_puts_the_job_back_like_sigterm(self):
        mock = self.start_mock(latency_ms=1000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=1)
        job = slow_job("int", 10)
        doc = self.enqueue(job)
        self.wait_state(job["id"], ("running",), timeout=10)
        time.sleep(0.5)
        took = self.stop_with(signal.SIGINT, a, 1)
        self.assert_put_back(job["id"], doc, attempts="0")
        print("\n  exit %.1f s after SIGINT (grace 1 s)" % took)
        self.assertIn("grace", "\n".join(self.log_lines(a, r"put back")), a.log())
        b = self.start_worker(mock, EXPORT_POOL_SIZE=16)
        st = self.wait_state(job["id"], timeout=20)
        self.assert_workbook(st, job)
        self.assertEqual(st["attempts"], "1", st)
        self.assertEqual(st["worker"], b.id, st)

    def test_grace_8_fits_docker_stop_timeout(self):
        # Docker sends SIGKILL 10 s after SIGTERM (stop_grace_period 10s).
        mock = self.start_mock(latency_ms=1000)
        w = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=8)
        job = slow_job("docker", 25)
        doc = self.enqueue(job)
        self.wait_state(job["id"], ("running",), timeout=10)
        time.sleep(0.5)
        took = self.stop_with(signal.SIGTERM, w, 8, slack=2.0)
        print("\n  exit %.2f s after SIGTERM (grace 8 s, Docker kills at 10 s)" % took)
        self.assertGreaterEqual(took, 7.5, "the job was put back before its grace passed")
        self.assertLess(took, 10.0)
        self.assert_put_back(job["id"], doc, attempts="0")

    def test_rolling_restart_loses_and_counts_nothing(self):
        # Two workers replaced one after the other, twice each, while 16 jobs
        # of about 2.5 s run (longer than the 1 s grace, so stops put jobs
        # back): every job succeeds, started once as counted.
        mock = self.start_mock(latency_ms=500)
        env = dict(EXPORT_POOL_SIZE=2, EXPORT_SHUTDOWN_GRACE=1)
        live = [self.start_worker(mock, **env) for _ in range(2)]
        for w in live:
            self.wait_registered(w)
        jobs = {}
        for n in range(16):
            jid = "roll-%02d" % n
            jobs[jid] = lookup_job_doc(jid, ["RL-%02d-%d" % (n, i) for i in range(10)])
            self.enqueue(jobs[jid])
        put_back = 0
        for _ in range(4):
            time.sleep(1.0)
            old = live.pop(0)
            self.stop_with(signal.SIGTERM, old, 1)
            put_back += len(self.log_lines(old, r"put back on the queue"))
            live.append(self.start_worker(mock, **env))
        statuses = self.wait_all(list(jobs), timeout=60)
        for jid, job in jobs.items():
            self.assert_workbook(statuses[jid], job)
            self.assertEqual(statuses[jid]["attempts"], "1", statuses[jid])
        self.assert_queues_empty()
        self.assertEqual(self.r.llen(self.key("dead")), 0)
        print("\n  4 workers replaced, %d job(s) put back and run again" % put_back)
        self.assertEqual(self.stats().get("jobs_succeeded"), 16, self.stats())

    def test_sigterm_while_redis_is_down_loses_no_job(self):
        # Redis goes away mid-job, then the worker is told to stop: it exits
        # 0 in bounded time although it can neither put the job back nor
        # deregister; once Redis is back, the job is recovered and done.
        server = self.use_own_redis()
        mock = self.start_mock(latency_ms=1000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=1,
                              EXPORT_HEARTBEAT_TTL_MS=2000)
        job = slow_job("nored", 10)
        self.enqueue(job)
        self.wait_state(job["id"], ("running",), timeout=10)
        time.sleep(0.5)
        server.shutdown()
        t0 = time.monotonic()
        a.signal(signal.SIGTERM)
        rc = a.wait(15)
        took = time.monotonic() - t0
        print("\n  exit %r %.1f s after SIGTERM with Redis down (grace 1 s)" % (rc, took))
        self.assertEqual(rc, 0, "exit status with Redis down")
        self.assertLess(took, 1 + 5, "a stop with Redis down took %.1f s" % took)
        print("  its log: %s" % "\n    ".join(
            line[:200] for line in self.log_lines(a, r'"lvl":"(warn|error)"')))
        server.start()
        b = self.start_worker(mock, EXPORT_POOL_SIZE=16, EXPORT_HEARTBEAT_TTL_MS=2000)
        st = self.wait_state(job["id"], timeout=20)
        self.assert_workbook(st, job)
        self.assertEqual(st["worker"], b.id, st)
        self.assert_queues_empty()

    def test_sigterm_while_waiting_for_redis_at_start(self):
        # Redis not there at start-up: the worker waits with backoff (up to
        # 5 s between tries); a stop must not wait for the next try.
        port = harness.free_port()
        w = self.start_worker(EXPORT_REDIS_URL="redis://127.0.0.1:%d/0" % port)
        time.sleep(3.5)  # the backoff has grown to 1.6-3.2 s by now
        self.assertTrue(w.running(), w.log())
        t0 = time.monotonic()
        w.signal(signal.SIGTERM)
        rc = w.wait(10)
        took = time.monotonic() - t0
        print("\n  exit %r %.1f s after SIGTERM while waiting for Redis" % (rc, took))
        self.assertEqual(rc, 0)
        self.assertLess(took, 2.0, "an idle worker took %.1f s to stop" % took)


if __name__ == "__main__":
    harness.main()
