"""The fenced job lifecycle under lost replies (PROTOCOL.md section 4,
Guarantees): a worker talks to Redis through resp_proxy.RespProxy, which
drops the reply to the take (BLMOVE) or to the job's finish script after
Redis ran it, or closes the connection on every finish call; and a job
pushed twice while it runs (a backend's retried LPUSH) reaches a second
worker. Whatever happens, each job ends exactly once: one outcome, counted
once in P:stats, nothing left in P:queue, processing lists or upload keys,
never two copies of one id running at once, none lost.

The proxy matches the worker's scripts by name (common/lua/<name>.lua, sent
verbatim): a test whose script the proxy never sees fails saying so."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402
import resp_proxy  # noqa: E402
from resp_proxy import RespProxy, command, non_nil_bulk, script  # noqa: E402

TTL_MS = 2000


class FencedTest(RobustTest):

    def proxy(self):
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = RespProxy(port)
        self._at_end.append(proxy.stop)  # after the workers have stopped
        return proxy

    def proxied_worker(self, proxy, mock=None, **env):
        env.setdefault("EXPORT_HEARTBEAT_TTL_MS", TTL_MS)
        w = self.start_worker(mock, EXPORT_REDIS_URL=proxy.url(), **env)
        self.wait_registered(w, timeout=10)
        return w

    def wait_fired(self, rule, what, timeout=20, proxy=None):
        if not rule.fired.wait(timeout):
            self.fail("the proxy never saw %s within %d s (scripts it knows: %s; commands it "
                      "saw: %s; a worker built from other bytes than common/lua/*.lua now "
                      "holds is not matched)"
                      % (what, timeout, ", ".join(resp_proxy.Scripts().names())
                         or "none: common/lua/*.lua missing",
                         dict(sorted(proxy.counts.items())) if proxy else "?"))

    def assert_ended_once(self, jid, job, settle_s=2 * TTL_MS / 1000.0 + 1, attempts="1"):
        """The job succeeded once: its workbook, one count in P:stats, empty
        lists, no upload leftovers; and nothing changes for @settle_s more."""
        st = self.status(jid)
        self.assert_workbook(st, job)
        self.assertEqual(st.get("attempts"), attempts, st)
        time.sleep(settle_s)
        again = self.status(jid)
        self.assertEqual(again, st, "the job's status changed after it ended (a second run?)")
        stats = self.stats()
        self.assertEqual(stats.get("jobs_succeeded"), 1, stats)
        self.assertEqual(stats.get("jobs_dead", 0), 0, stats)
        self.assertEqual(stats.get("jobs_failed", 0), 0, stats)
        self.assertEqual(self.r.llen(self.key("dead")), 0)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        return st


class LostReplies(FencedTest):

    def test_take_reply_lost(self):
        """BLMOVE moved the job into the worker's processing list, but the
        reply never reached the worker: the job still runs, once, within
        2 x the heartbeat TTL of the take."""
        proxy = self.proxy()
        rule = proxy.drop_reply_and_close(command("BLMOVE"), reply=non_nil_bulk, times=1)
        mock = self.start_mock(latency_ms=20)
        w = self.proxied_worker(proxy, mock, EXPORT_POOL_SIZE=4)
        job = lookup_job_doc("take-lost", ["T-%d" % i for i in range(12)])
        self.enqueue(job)
        self.wait_fired(rule, "a BLMOVE that carried a job", timeout=10, proxy=proxy)
        t_take_ms = rule.hits[0][0]
        st = self.wait_state(job["id"], timeout=2 * TTL_MS / 1000.0 + 20)
        started_after = int(st.get("started_at", 0)) - t_take_ms
        print("\n  take reply dropped; the job started %d ms after the take (bound %d ms), "
              "state %s" % (started_after, 2 * TTL_MS, st.get("state")))
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertLessEqual(started_after, 2 * TTL_MS,
                             "the job started %d ms after its take, over 2 x TTL" % started_after)
        self.assert_ended_once(job["id"], job)
        self.assertEqual(self.status(job["id"]).get("worker"), w.id)
        self.assertEqual(mock.lookups(), 12, "a key looked up twice: the job ran twice")

    def test_finish_reply_lost(self):
        """Redis ran the job's finish script, but its reply was lost: the
        worker must not run, count or put back the job again."""
        proxy = self.proxy()
        rule = proxy.drop_reply_and_close(script("finish"), times=1)
        mock = self.start_mock(latency_ms=20)
        w = self.proxied_worker(proxy, mock, EXPORT_POOL_SIZE=4)
        job = lookup_job_doc("finish-lost", ["F-%d" % i for i in range(12)])
        self.enqueue(job)
        self.wait_fired(rule, "the finish script (common/lua/finish.lua)", proxy=proxy)
        st = self.wait_state(job["id"], timeout=20)
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assert_ended_once(job["id"], job)
        self.assertEqual(self.status(job["id"]).get("worker"), w.id)
        self.assertEqual(mock.lookups(), 12, "a key looked up twice: the job ran twice")
        self.wait_until("jobs_done 1 in the heartbeat",
                        lambda: self.r.hget(self.key("worker", w.id), "jobs_done") == b"1",
                        timeout=TTL_MS / 1000.0 + 2)
        # The worker goes on with the next job.
        nxt = {"id": "after", "columns": [{"header": "A", "field": "a"}], "rows": [{"a": "x"}]}
        self.run_job(nxt, timeout=15)


class EndRetries(FencedTest):

    def test_sigterm_while_the_end_cannot_be_recorded(self):
        """Every finish call loses its connection; SIGTERM then stops the
        worker within EXPORT_SHUTDOWN_GRACE (+1 s), exit 0, and the job is
        not lost: once the link mends, another worker ends it exactly once."""
        grace = 3
        proxy = self.proxy()
        rule = proxy.close_on(script("finish"), seconds=600)
        mock = self.start_mock(latency_ms=20)
        a = self.proxied_worker(proxy, mock, EXPORT_POOL_SIZE=4, EXPORT_SHUTDOWN_GRACE=grace)
        job = lookup_job_doc("end-retry", ["E-%d" % i for i in range(8)])
        self.enqueue(job)
        self.wait_fired(rule, "the finish script (common/lua/finish.lua)", proxy=proxy)
        self.wait_until("a retried finish", lambda: len(rule.hits) >= 2, timeout=15)
        t0 = time.monotonic()
        a.signal(signal.SIGTERM)
        rc = a.wait(grace + 1 + 5)
        took = time.monotonic() - t0
        print("\n  %d finish calls cut; exit %r %.1f s after SIGTERM (grace %d s); state then %s"
              % (len(rule.hits), rc, took, grace, self.status(job["id"]).get("state")))
        self.assertEqual(rc, 0, "exit status %r %.1f s after SIGTERM" % (rc, took))
        self.assertLessEqual(took, grace + 1.0, "exit %.1f s after SIGTERM with a %d s grace"
                             % (took, grace))
        proxy.clear()
        b = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=4)
        st = self.wait_state(job["id"], timeout=2 * TTL_MS / 1000.0 + 20)
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertEqual(st.get("worker"), b.id, st)
        self.assert_ended_once(job["id"], job, attempts=st.get("attempts"))
        self.assertIn(st.get("attempts"), ("1", "2"), st)
        self.wait_until("%s leaves P:workers" % a.id,
                        lambda: not self.r.sismember(self.key("workers"), a.id),
                        timeout=2 * TTL_MS / 1000.0 + 2)


class DuplicatePush(FencedTest):
    """The backend retried its LPUSH: the same id is queued again while a
    worker runs it, and a second, idle worker takes the copy."""

    def start_first(self, mock):
        a = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=4)
        self.wait_registered(a)
        return a

    def watch(self, jid, until, owner):
        """Samples the status until @until() is true: [(worker, attempts, state)]
        seen that are not @owner's first run."""
        odd = []
        deadline = time.monotonic() + 30
        while not until() and time.monotonic() < deadline:
            st = self.status(jid)
            if st.get("worker") not in (None, owner) or st.get("attempts") not in (None, "1"):
                odd.append((st.get("worker"), st.get("attempts"), st.get("state")))
            time.sleep(0.03)
        return odd

    def test_identical_document_is_dropped(self):
        mock = self.start_mock("--slow", "SLOW*=3000", latency_ms=20)
        a = self.start_first(mock)
        job = lookup_job_doc("dup", ["SLOW-%d" % i for i in range(4)]
                             + ["K-%d" % i for i in range(4)])
        doc = self.enqueue(job)
        self.wait_state(job["id"], ("running",), timeout=10)
        b = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=4)
        self.wait_registered(b)
        self.assertEqual(self.status(job["id"]).get("state"), "running",
                         "the first run ended before the copy was pushed: make it slower")
        self.r.lpush(self.key("queue"), doc)  # the same bytes again
        # The copy is dropped, while the first run still runs.
        self.wait_until("the copy taken and dropped",
                        lambda: self.r.llen(self.key("queue")) == 0
                        and self.r.llen(self.key("processing", b.id)) == 0, timeout=5)
        odd = self.watch(job["id"], lambda: self.status(job["id"]).get("state")
                         in harness.TERMINAL, a.id)
        self.assertEqual(odd, [], "the copy ran, or counted a start: (worker, attempts, state)")
        st = self.status(job["id"])
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertEqual(st.get("worker"), a.id, st)
        self.assert_ended_once(job["id"], job)
        self.assertEqual(mock.lookups(), 8, "keys looked up again: the copy ran")

    def test_different_document_runs_after_the_first(self):
        record = os.path.join(self.tmp, "dup2.record")
        mock = self.start_mock("--slow", "SLOW*=3000", "--record", record, latency_ms=20)
        tail = harness.RecordTail(record)
        self.addCleanup(tail.stop)
        self.start_first(mock)
        first = lookup_job_doc("dup2", ["SLOW-%d" % i for i in range(4)])
        second = lookup_job_doc("dup2", ["B-%d" % i for i in range(6)])
        self.enqueue(first)
        self.wait_state("dup2", ("running",), timeout=10)
        b = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=4)
        self.wait_registered(b)
        self.assertEqual(self.status("dup2").get("state"), "running",
                         "the first run ended before the copy was pushed: make it slower")
        self.r.lpush(self.key("queue"), json.dumps(second))
        t_push = time.monotonic()

        def second_done():
            st = self.status("dup2")
            return st.get("state") == "succeeded" and st.get("rows_written") == "6"
        self.wait_until("the second document's run to end", second_done, timeout=30)
        tail.stop()
        # The mock records a lookup when it arrives and answers SLOW-* 3 s
        # later: the first run cannot have ended before then.
        slow_times = [t for t, k in tail.lines if k.startswith("SLOW-")]
        b_times = [t for t, k in tail.lines if k.startswith("B-")]
        self.assertEqual(len(slow_times), 4, "the first ran more than once")
        first_end = max(slow_times) + 3.0
        print("\n  copy pushed; its first lookup %.2f s after the push, %.2f s after the first "
              "run's last answer" % (min(b_times) - t_push, min(b_times) - first_end)
              if b_times else "\n  the second document was never looked up")
        self.assertTrue(b_times, "the second document's keys were never looked up")
        self.assertGreaterEqual(min(b_times), first_end - 0.3,
                                "the second document ran while the first still ran")
        self.assertEqual(sorted(k for _, k in tail.lines if k.startswith("B-")),
                         sorted("B-%d" % i for i in range(6)), "the second ran more than once")
        st = self.status("dup2")
        self.assert_workbook(st, second)
        stats = self.stats()
        self.assertEqual(stats.get("jobs_succeeded"), 2, stats)
        self.assertEqual(stats.get("jobs_dead", 0), 0, stats)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()


if __name__ == "__main__":
    harness.main()
