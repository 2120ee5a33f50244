"""Redis shut down and started again while jobs run (an operator's restart,
AOF on): the workers reconnect and carry on, no job is lost or done wrong, no
worker exits, and each outage is logged once per connection, not once per
attempt.

Each test runs its own redis-server (AOF, appendfsync always, its own folder
and port), since the one of with-redis.sh keeps nothing on disk."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402

import json  # noqa: E402

JOBS = 40
# Lines about losing Redis: the main connection's "Redis unreachable", the
# heartbeat's "renewal failed", and whatever else mentions the trouble.
TROUBLE = (r"unreachable|renewal failed|lapsed|taking a job failed|connection|refused|"
           r"could not|failed to|retry|retrying")


class RedisRestart(RobustTest):

    def run_restart(self, ttl_ms, outage_s, workers=2):
        server = self.use_own_redis()
        mock = self.start_mock(latency_ms=300)
        ws = [self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=ttl_ms, EXPORT_POOL_SIZE=8,
                                EXPORT_LOG_FORMAT="text")
              for _ in range(workers)]
        for w in ws:
            self.wait_registered(w)
        jobs = {}
        for n in range(JOBS):
            jid = "rr-%02d" % n
            # 6 rows, 4 distinct keys: one round of 300 ms lookups per job.
            jobs[jid] = lookup_job_doc(jid, ["R-%02d-%d" % (n, i % 4) for i in range(6)])
            self.enqueue(jobs[jid])
        t0 = time.monotonic()
        # Mid-run: some jobs done, some running, most still queued.
        self.wait_until("a few jobs done",
                        lambda: self.stats().get("jobs_succeeded", 0) >= 4, timeout=30)
        running = [j for j in jobs if self.status(j).get("state") == "running"]
        done_before = self.stats().get("jobs_succeeded", 0)
        t_down = time.monotonic()
        server.shutdown()
        time.sleep(outage_s)
        server.start()
        t_up = time.monotonic()
        statuses = self.wait_all(list(jobs), timeout=90)
        total = time.monotonic() - t0

        for w in ws:
            self.assertTrue(w.running(), "worker %s exited (status %s) after the Redis restart"
                            % (w.id, w.proc.returncode))
        not_ok = {j: (s.get("state"), s.get("error_code"), s.get("error"))
                  for j, s in statuses.items() if s.get("state") != "succeeded"}
        self.assertEqual(not_ok, {}, "jobs that did not succeed")
        for jid, job in jobs.items():
            self.assert_workbook(statuses[jid], job)
        self.assert_queues_empty()
        self.assertEqual(self.r.llen(self.key("dead")), 0)
        self.assert_no_stray_upload_keys()
        self.assertEqual(self.stats().get("jobs_succeeded"), JOBS, self.stats())
        for w in ws:
            self.wait_until("worker %s registered again" % w.id,
                            lambda: self.r.sismember(self.key("workers"), w.id)
                            and self.r.exists(self.key("worker", w.id)),
                            timeout=ttl_ms / 1000 + 2)
        reruns = {j: s["attempts"] for j, s in statuses.items() if s["attempts"] != "1"}
        print("\n  TTL %d ms, outage %.1f s (down at %.1f s, up at %.1f s), %d jobs done before, "
              "%d running at the shutdown, all %d done after %.1f s; reruns: %r"
              % (ttl_ms, t_up - t_down, t_down - t0, t_up - t0, done_before, len(running),
                 JOBS, total, reruns))

        # One line per outage per connection, not a flood.
        for w in ws:
            trouble = self.log_lines(w, TROUBLE)
            print("  worker %s: %d line(s) about the outage:\n    %s"
                  % (w.id, len(trouble), "\n    ".join(
                      re.sub(r"^ts=\S+ ", "", line)[:200] for line in trouble)))
            unreachable = self.log_lines(w, r"Redis unreachable, retrying")
            renewal = self.log_lines(w, r"heartbeat renewal failed")
            self.assertLessEqual(len(unreachable), 1,
                                 "worker %s logged 'Redis unreachable' %d times for one outage"
                                 % (w.id, len(unreachable)))
            self.assertLessEqual(len(renewal), 1,
                                 "worker %s logged 'heartbeat renewal failed' %d times for one "
                                 "outage" % (w.id, len(renewal)))
            self.assertGreaterEqual(len(unreachable) + len(renewal), 1,
                                    "worker %s did not log the outage at all" % w.id)
            self.assertLessEqual(len(trouble), 10,
                                 "worker %s logged %d lines about one Redis outage"
                                 % (w.id, len(trouble)))
        return statuses

    def test_restart_within_the_heartbeat_ttl(self):
        # Down for 3 s with the default 6 s TTL: no heartbeat lapses. A job
        # caught by the outage may run again (at least once); jobs that were
        # not running then run once.
        statuses = self.run_restart(ttl_ms=6000, outage_s=3)
        for jid, st in statuses.items():
            self.assertIn(st["attempts"], ("1", "2"), "%s: %r" % (jid, st))

    def test_restart_longer_than_the_heartbeat_ttl(self):
        # Down for 4 s with a 2 s TTL: every heartbeat expires meanwhile; the
        # running jobs are abandoned and recovered, none is lost.
        self.run_restart(ttl_ms=2000, outage_s=4)

    def test_restart_while_idle(self):
        # Workers blocked in BLMOVE on an empty queue when Redis goes away:
        # they reconnect and take the jobs enqueued after the restart.
        server = self.use_own_redis()
        mock = self.start_mock(latency_ms=50)
        ws = [self.start_worker(mock, EXPORT_LOG_FORMAT="text") for _ in range(2)]
        for w in ws:
            self.wait_registered(w)
        time.sleep(0.5)
        server.shutdown()
        time.sleep(2)
        server.start()
        jobs = [lookup_job_doc("idle-%d" % n, ["I-%d-%d" % (n, i) for i in range(4)])
                for n in range(6)]
        for job in jobs:
            self.enqueue(job)
        statuses = self.wait_all([j["id"] for j in jobs], timeout=30)
        for job in jobs:
            self.assert_workbook(statuses[job["id"]], job)
            self.assertEqual(statuses[job["id"]]["attempts"], "1")
        self.assert_queues_empty()
        for w in ws:
            self.assertTrue(w.running(), "worker %s exited" % w.id)
            self.assertLessEqual(len(self.log_lines(w, r"Redis unreachable, retrying")), 1)
            self.assertLessEqual(len(self.log_lines(w, TROUBLE)), 10, w.log())
            self.wait_until("worker %s registered again" % w.id,
                            lambda: self.r.sismember(self.key("workers"), w.id)
                            and self.r.exists(self.key("worker", w.id)), timeout=8)

    def test_restart_between_rows_key_jobs(self):
        # A job thread keeps its rows reader's connection from one rows_key
        # job to the next. A restart in between leaves it dead without the
        # worker knowing: the next job's read is sent again on a new one, and
        # the job runs once, not once more after being lost.
        server = self.use_own_redis()
        mock = self.start_mock(latency_ms=5)
        w = self.start_worker(mock, EXPORT_CONCURRENCY=1, EXPORT_LOG_FORMAT="text")

        def run_from_list(n):
            doc = lookup_job_doc("restart-rk-%d" % n, ["RK-%d-%d" % (n, i) for i in range(30)])
            rows_key = self.key("rows", doc["id"])
            self.r.rpush(rows_key, *[json.dumps(row) for row in doc["rows"]])
            job = {k: v for k, v in doc.items() if k != "rows"}
            st = self.run_job(dict(job, rows_key=rows_key), timeout=30)
            self.assert_workbook(st, doc)
            return st

        run_from_list(0)
        server.shutdown()
        server.start()
        st = run_from_list(1)
        self.assertEqual(st["attempts"], "1", st)
        self.assertTrue(w.running(), "worker %s exited" % w.id)


if __name__ == "__main__":
    harness.main()
