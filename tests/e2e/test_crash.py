"""Jobs that crash workers, and runs that overlap: a job that kills every
worker that starts it ends in P:dead after EXPORT_MAX_ATTEMPTS starts while
the jobs around it succeed; a job run again leaves one consistent result; a
run that lost its job to another worker (frozen, then woken) cannot change
the outcome (PROTOCOL.md section 4, Guarantees; docs/protocol.md, Attempts).

test_lifecycle.py's test_out_of_attempts_goes_to_dead covers one start with
EXPORT_MAX_ATTEMPTS=1; here the job is started and killed three times."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc, now_ms, sha256  # noqa: E402

TTL_MS = 2000


class CrashLoop(RobustTest):

    def test_job_that_kills_its_worker_every_time(self):
        max_attempts = 3
        # The crashing job's keys are slow (3 s), so that it is caught running.
        mock = self.start_mock("--slow", "BOOM*=3000", latency_ms=50)
        env = dict(EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_MAX_ATTEMPTS=max_attempts,
                   EXPORT_POOL_SIZE=8)
        workers = {}
        for _ in range(2):
            w = self.start_worker(mock, **env)
            workers[w.id] = w
        others = {}
        for n in range(5):
            job = lookup_job_doc("before-%d" % n, ["A-%d-%d" % (n, i) for i in range(5)])
            others[job["id"]] = job
            self.enqueue(job)
        boom = lookup_job_doc("boom", ["BOOM-%d" % i for i in range(8)])
        boom_doc = self.enqueue(boom)
        for n in range(10):
            job = lookup_job_doc("after-%d" % n, ["B-%d-%d" % (n, i) for i in range(5)])
            others[job["id"]] = job
            self.enqueue(job)

        # Kill whichever worker starts "boom", each time it starts.
        kills = []
        seen_attempts = set()
        deadline = time.monotonic() + 60
        st = {}
        while time.monotonic() < deadline:
            st = self.status("boom")
            if st.get("state") in harness.TERMINAL:
                break
            if st.get("state") == "running" and st.get("attempts") not in seen_attempts:
                seen_attempts.add(st["attempts"])
                victim = workers.pop(st["worker"])
                victim.kill9()
                kills.append((st["attempts"], victim.id, time.monotonic()))
                w = self.start_worker(mock, **env)
                workers[w.id] = w
            time.sleep(0.02)
        t_end = time.monotonic()
        print("\n  kills (attempts, worker): %r; ended %.1f s after the last kill"
              % ([(a, wid) for a, wid, _ in kills], t_end - kills[-1][2] if kills else -1))

        self.assertEqual(st.get("state"), "failed", st)
        self.assertEqual(st.get("error_code"), "too_many_attempts", st)
        self.assertEqual([a for a, _, _ in kills], [str(i) for i in range(1, max_attempts + 1)],
                         "each start killed once, with attempts 1, 2, 3")
        self.assertEqual(st.get("attempts"), str(max_attempts), st)
        self.assertRegex(st.get("error", ""), r"(?i)attempts", st)
        self.assertEqual(self.r.exists(self.key("result", "boom")), 0)
        # The dead letter: the original document, an error, a time.
        dead = self.r.lrange(self.key("dead"), 0, -1)
        self.assertEqual(len(dead), 1, dead)
        entry = json.loads(dead[0])
        self.assertEqual(entry.get("job"), boom_doc.decode(), entry)
        self.assertRegex(entry.get("error", ""), r"(?i)too_many_attempts|attempts", entry)
        self.assertIsInstance(entry.get("failed_at"), (int, float), entry)
        self.assertLessEqual(abs(entry["failed_at"] - now_ms()), 120000, entry)
        self.assertEqual(self.stats().get("jobs_dead"), 1, self.stats())

        # Everything around it succeeded, once each.
        statuses = self.wait_all(list(others), timeout=30)
        for jid, job in others.items():
            self.assert_workbook(statuses[jid], job)
            self.assertEqual(statuses[jid]["attempts"], "1", statuses[jid])
        self.assert_queues_empty()
        self.assert_no_stray_upload_keys()
        self.wait_until("killed workers leave P:workers",
                        lambda: {m.decode() for m in self.r.smembers(self.key("workers"))}
                        == set(workers), timeout=2 * TTL_MS / 1000 + 2)


class Idempotence(RobustTest):

    def test_same_document_run_again(self):
        mock = self.start_mock(latency_ms=20)
        w = self.start_worker(mock)
        job = lookup_job_doc("twice", ["T-%d" % (i % 7) for i in range(30)])
        st1 = self.run_job(job)
        first = self.assert_workbook(st1, job)
        self.assertEqual(st1["attempts"], "1")
        # The same document again, as after a crash right after the result
        # was stored (the status is left as it is).
        self.enqueue(job, status=False)
        st2 = self.wait_until("the second run's end",
                              lambda: (lambda s: s if s.get("attempts") == "2"
                                       and s.get("state") == "succeeded" else None)(
                                  self.status("twice")), timeout=20)
        second = self.assert_workbook(st2, job)
        self.assertEqual(st2["result_key"], st1["result_key"])
        self.assertEqual(st2["result_sha256"], sha256(second))
        self.assertEqual(st2["result_bytes"], str(len(second)))
        self.assertGreaterEqual(int(st2["finished_at"]), int(st1["finished_at"]))
        self.assertEqual(st2["worker"], w.id)
        for f in ("error", "error_code"):
            self.assertNotIn(f, st2)
        self.assertEqual(st2["rows_written"], "30", st2)
        self.assertEqual(st2["lookups_done"], "7", st2)
        self.assertEqual(self.stats().get("jobs_succeeded"), 2, self.stats())
        self.assertEqual(self.stats().get("bytes_out"), len(first) + len(second), self.stats())
        for k in (self.key("job", "twice"), self.key("result", "twice")):
            ttl = self.r.ttl(k)
            self.assertTrue(0 < ttl <= 86400, "%s TTL %d" % (k, ttl))
        self.assertEqual(self.upload_keys(), {})
        self.assert_queues_empty()

    def test_crash_between_upload_and_end(self):
        """A worker died after uploading its result but before its end
        script: its document is in its processing list, its partial upload is
        in P:result:<id>:upload:<worker> (with a TTL), its status says
        running. Recovery runs the job again; the outcome is the new run's."""
        ghost = "ghost-%s" % self.prefix[-8:]
        job = lookup_job_doc("ghosted", ["G-%d" % i for i in range(6)])
        doc = json.dumps(job)
        self.r.sadd(self.key("workers"), ghost)
        self.r.lpush(self.key("processing", ghost), doc)
        self.r.hset(self.key("job", "ghosted"),
                    mapping={"state": "running", "attempts": 1, "worker": ghost,
                             "queued_at": now_ms() - 5000, "started_at": now_ms() - 4000})
        self.r.set(self.key("result", "ghosted", "upload", ghost), b"PK\x03\x04partial", px=60000)
        mock = self.start_mock(latency_ms=20)
        w = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        st = self.wait_until("the job run again",
                             lambda: (lambda s: s if s.get("state") == "succeeded" else None)(
                                 self.status("ghosted")), timeout=15)
        self.assertEqual(st["attempts"], "2", st)
        self.assertEqual(st["worker"], w.id, st)
        self.assert_workbook(st, job)
        self.assertEqual(self.r.exists(self.key("processing", ghost)), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), ghost))
        self.assert_no_stray_upload_keys()
        self.assert_queues_empty()

    def test_recovery_puts_the_oldest_next_in_line(self):
        """A dead worker with several documents in its processing list (the
        newest at the left, as BLMOVE ... LEFT puts them): recovery puts them
        back so that the oldest is taken first."""
        ghost = "ghost-%s" % self.prefix[-8:]
        jobs = [{"id": "old-%d" % i, "columns": [{"header": "A", "field": "a"}],
                 "rows": [{"a": "r%d" % i}]} for i in range(3)]
        self.r.sadd(self.key("workers"), ghost)
        for job in jobs:  # old-0 taken first, so it ends up at the right
            self.r.lpush(self.key("processing", ghost), json.dumps(job))
        self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        statuses = self.wait_all([j["id"] for j in jobs], timeout=15)
        for job in jobs:
            self.assert_workbook(statuses[job["id"]], job)
        order = sorted(statuses, key=lambda j: int(statuses[j]["started_at"]))
        self.assertEqual(order, ["old-0", "old-1", "old-2"], "oldest not taken first")
        self.assertFalse(self.r.sismember(self.key("workers"), ghost))
        self.assert_queues_empty()


class Takeover(RobustTest):

    def test_frozen_worker_cannot_change_the_outcome(self):
        """Worker A is frozen (SIGSTOP) mid-job; its heartbeat expires, B
        recovers the job and finishes it. A is woken (SIGCONT) and goes on
        with its stale run: the status and the result stay B's."""
        mock = self.start_mock(latency_ms=500)
        a = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=2)
        self.addCleanup(lambda: a.running() and a.signal(signal.SIGCONT))
        job = lookup_job_doc("frozen", ["Z-%02d" % i for i in range(24)])  # 6 s on A
        self.enqueue(job)
        st = self.wait_state("frozen", ("running",) + harness.TERMINAL, timeout=10)
        self.assertEqual(st["worker"], a.id, st)
        time.sleep(1.0)
        a.signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        b = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=32)
        st_b = self.wait_until("B's run to end",
                               lambda: (lambda s: s if s.get("state") in harness.TERMINAL
                                        else None)(self.status("frozen")), timeout=20)
        self.assertEqual(st_b["state"], "succeeded", st_b)
        self.assertEqual(st_b["worker"], b.id, st_b)
        self.assertEqual(st_b["attempts"], "2", st_b)
        data_b = self.assert_workbook(st_b, job)
        events = harness.Events(self.r, self.key("events"))
        self.addCleanup(events.stop)
        a.signal(signal.SIGCONT)
        frozen_for = time.monotonic() - t_stop
        # A's stale run goes on for a few seconds (4 s of lookups left).
        changes = []
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            st = self.status("frozen")
            if st != st_b and (not changes or changes[-1] != st):
                changes.append(st)
            time.sleep(0.05)
        events.stop()
        self.assertTrue(a.running(), "the frozen worker died after SIGCONT")
        stale_events = [m.decode() for _, m in events.messages
                        if json.loads(m).get("id") == "frozen"]
        print("\n  events about the ended job after %s woke: %d, e.g. %s"
              % (a.id, len(stale_events), stale_events[:3]))
        problems = []
        # Only the run that owns the job ends it, and an ended job's status
        # and result are its outcome: a stale run must not touch them.
        diff = [{k: (st_b.get(k), s.get(k)) for k in set(st_b) | set(s)
                 if st_b.get(k) != s.get(k)} for s in changes]
        if diff:
            problems.append("the stale run of %s changed the ended job's status %d times "
                            "(field: (B's value, later value)), first %r, last %r"
                            % (a.id, len(diff), diff[0], diff[-1]))
        if self.r.get(self.key("result", "frozen")) != data_b:
            problems.append("the stale run replaced the result")
        if stale_events:
            problems.append("the stale run published %d events about the ended job, e.g. %s"
                            % (len(stale_events), stale_events[:2]))
        # A could not renew its heartbeat for longer than the TTL (it was
        # frozen): a lapsed worker abandons its job (docs/protocol.md, Lapse).
        if not self.log_lines(a, r"heartbeat lapsed|abandon"):
            problems.append("%s was frozen (no heartbeat renewal) for at least %.1f s "
                            "(TTL %.1f s) but did not notice its heartbeat lapsed: it ran "
                            "the job on to its end"
                            % (a.id, frozen_for, TTL_MS / 1000))
        self.assertEqual(self.stats().get("jobs_succeeded"), 1, self.stats())
        self.assertEqual(self.r.llen(self.key("processing", a.id)), 0)
        # A goes on taking jobs.
        self.wait_until("A registered again",
                        lambda: self.r.exists(self.key("worker", a.id)), timeout=5)
        b.stop()
        self.run_job({"id": "after-thaw", "columns": [{"header": "A", "field": "a"}],
                      "rows": [{"a": "x"}]}, timeout=15)
        self.assertEqual(self.status("after-thaw")["worker"], a.id)
        self.assertEqual(problems, [])

    def test_partitioned_worker_abandons_its_job(self):
        """Worker A loses Redis (its connections go through a proxy that is
        cut) while B still reaches it. A's heartbeat lapses: A abandons its
        job, B recovers and finishes it; when A is reconnected, nothing of
        its run shows up, and A goes on working."""
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = harness.TcpProxy(port)
        self.addCleanup(proxy.stop)
        mock = self.start_mock(latency_ms=500)
        a = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=2,
                              EXPORT_REDIS_URL="redis://127.0.0.1:%d/0" % proxy.port)
        job = lookup_job_doc("cutoff", ["P-%02d" % i for i in range(24)])  # 6 s on A
        self.enqueue(job)
        st = self.wait_state("cutoff", ("running",) + harness.TERMINAL, timeout=10)
        self.assertEqual(st["worker"], a.id, st)
        time.sleep(0.5)
        proxy.cut()
        t_cut = time.monotonic()
        b = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=32)
        st_b = self.wait_until("B's run to end",
                               lambda: (lambda s: s if s.get("state") in harness.TERMINAL
                                        else None)(self.status("cutoff")), timeout=20)
        took = time.monotonic() - t_cut
        self.assertEqual(st_b["state"], "succeeded", st_b)
        self.assertEqual(st_b["worker"], b.id, st_b)
        self.assertEqual(st_b["attempts"], "2", st_b)
        data_b = self.assert_workbook(st_b, job)
        # A noticed the lapse (TTL 2 s) before or about when B took over.
        self.wait_until("A to log the lapse",
                        lambda: self.log_lines(a, r"heartbeat lapsed"), timeout=5)
        events = harness.Events(self.r, self.key("events"))
        self.addCleanup(events.stop)
        proxy.mend()
        changes = []
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            st = self.status("cutoff")
            if st != st_b and (not changes or changes[-1] != st):
                changes.append(st)
            time.sleep(0.05)
        events.stop()
        stale = [m.decode() for _, m in events.messages if json.loads(m).get("id") == "cutoff"]
        print("\n  B ended the job %.1f s after the cut; after the mend: %d status changes, "
              "%d events" % (took, len(changes), len(stale)))
        self.assertTrue(a.running(), "A exited")
        self.assertEqual([{k: (st_b.get(k), c.get(k)) for k in set(st_b) | set(c)
                           if st_b.get(k) != c.get(k)} for c in changes], [],
                         "A's abandoned run changed the ended job's status")
        self.assertEqual(stale, [], "A's abandoned run published events")
        self.assertEqual(self.r.get(self.key("result", "cutoff")), data_b)
        self.assertEqual(self.stats().get("jobs_succeeded"), 1, self.stats())
        self.assert_queues_empty()
        self.assert_no_stray_upload_keys()
        # A comes back: registered, and taking jobs.
        self.wait_until("A registered again",
                        lambda: self.r.sismember(self.key("workers"), a.id)
                        and self.r.exists(self.key("worker", a.id)), timeout=5)
        b.stop()
        self.run_job({"id": "after-mend", "columns": [{"header": "A", "field": "a"}],
                      "rows": [{"a": "x"}]}, timeout=15)
        self.assertEqual(self.status("after-mend")["worker"], a.id)


if __name__ == "__main__":
    harness.main()
