"""Redis error replies, split in two: transient ones (LOADING, BUSY,
TRYAGAIN, MASTERDOWN, READONLY) are retried and the job succeeds as if
nothing happened; permanent ones (WRONGTYPE, NOPERM, a non-integer P:stats
field) end the job in P:dead with that error in the entry, logged once (no
retry loop), nothing of the job written half-way, and the worker goes on
with the next job within seconds."""

import json
import os
import re
import signal
import sys
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest  # noqa: E402
import resp_proxy  # noqa: E402
from resp_proxy import RespProxy, command, script  # noqa: E402

TTL_MS = 2000


def plain_job(jid, n=3):
    return {"id": jid, "columns": [{"header": "A", "field": "a"},
                                   {"header": "N", "field": "n", "type": "integer"}],
            "rows": [{"a": "%s-%d" % (jid, i), "n": i} for i in range(n)]}


class RedisErrors(RobustTest):

    def dead_entries(self):
        return [json.loads(e) for e in self.r.lrange(self.key("dead"), 0, -1)]

    def wait_dead(self, doc, timeout=15):
        """The P:dead entry of @doc (bytes), once it is there."""
        def find():
            for e in self.dead_entries():
                if e.get("job") == doc.decode():
                    return e
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = find()
            if e is not None:
                return e
            time.sleep(0.05)
        self.fail("the job is not in P:dead within %d s; P:dead %r, queue %d, processing %r"
                  % (timeout, self.dead_entries(), self.r.llen(self.key("queue")),
                     self.processing_lists()))

    def wait_end(self, jid, doc, timeout):
        """The job's final status; fails at once if @doc went to P:dead."""
        deadline = time.monotonic() + timeout
        st = {}
        while time.monotonic() < deadline:
            dead = [e for e in self.dead_entries() if e.get("job") == doc.decode()]
            if dead:
                self.fail("a transient error sent the job to P:dead: %s" % dead[0].get("error"))
            st = self.status(jid)
            if st.get("state") in harness.TERMINAL:
                return st
            time.sleep(0.05)
        self.fail("job %s did not end within %d s; status %r" % (jid, timeout, st))

    def assert_logged_once(self, worker, pattern):
        """Warnings and errors of @worker whose message matches @pattern (case
        counts: the test's prefix is in lower case): one, or two (the error
        and the dead letter), not a retry loop."""
        rx = re.compile(pattern)
        lines = []
        for line in worker.log().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("lvl") in ("warn", "error") and rx.search(obj.get("msg", "")):
                lines.append(line)
        self.assertTrue(1 <= len(lines) <= 2,
                        "want the error logged once (at most 2 lines: the error and the "
                        "dead letter), got %d warn/error lines matching %r, e.g. %s"
                        % (len(lines), pattern, lines[:3]))

    def error_count(self, kind):
        """Error replies of type @kind Redis has sent (INFO errorstats)."""
        v = self.r.info("errorstats").get("errorstat_" + kind, 0)
        if isinstance(v, dict):
            return int(v.get("count", 0))
        if isinstance(v, str) and v.startswith("count="):
            return int(v.split("=", 1)[1].split(",")[0])
        return int(v or 0)

    def assert_goes_on(self, jid="next", within=5.0):
        """A good job pushed now succeeds within @within seconds."""
        t0 = time.monotonic()
        job = plain_job(jid)
        st = self.run_job(job, timeout=within + 10)
        took = time.monotonic() - t0
        self.assertLess(took, within, "the next job took %.1f s" % took)
        self.assert_workbook(st, job)

    def assert_nothing_half_written(self, jid):
        st = self.status(jid)
        self.assertNotEqual(st.get("state"), "succeeded", st)
        for f in ("result_key", "result_bytes", "result_sha256"):
            self.assertNotIn(f, st, "status half-written: %r" % st)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0, "a result was stored")
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        return st

    # -- permanent -------------------------------------------------------------
    def test_wrongtype_status_key(self):
        w = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(w)
        jid = "wrongtype"
        self.r.set(self.key("job", jid), "x")
        doc = self.enqueue(plain_job(jid), status=False)
        entry = self.wait_dead(doc)
        print("\n  P:dead error: %s" % entry.get("error"))
        self.assertRegex(entry.get("error", ""), r"WRONGTYPE|not a hash")
        self.assertIsInstance(entry.get("failed_at"), (int, float), entry)
        self.assertEqual(self.r.get(self.key("job", jid)), b"x", "the string key was replaced")
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        self.assertEqual(self.stats().get("jobs_dead"), 1, self.stats())
        self.assert_goes_on()
        self.assertEqual(len(self.dead_entries()), 1)
        self.assert_logged_once(w, r"WRONGTYPE|not a hash")

    def test_noperm_on_the_status_key(self):
        """An ACL user that may read but not write P:job:nope* (Redis 7
        %R~ key permissions), everything else of the prefix allowed."""
        user, password = "exw-noperm-%s" % self.prefix[-8:], "pw-" + self.prefix[-8:]
        p = self.prefix + ":"
        denied = "job:nope"
        rule = ["on", ">" + password, "resetkeys", "resetchannels", "&*", "+@all",
                "%R~" + p + denied + "*"]
        # Every key of the prefix whose name does not begin with job:nope.
        for i in range(len(denied)):
            rule.append("~" + p + denied[:i] + "[^" + denied[i] + "]*")
        self.r.execute_command("ACL", "SETUSER", user, *rule)
        self.addCleanup(self.r.execute_command, "ACL", "DELUSER", user)
        port = self.r.connection_pool.connection_kwargs["port"]
        url = "redis://%s:%s@127.0.0.1:%d/0" % (user, password, port)
        check = redis.Redis(host="127.0.0.1", port=port, username=user, password=password)
        try:
            check.hget(self.key("job", "nope-1"), "state")
            with self.assertRaises(redis.exceptions.NoPermissionError):
                check.hset(self.key("job", "nope-1"), "state", "x")
            check.hset(self.key("job", "probe"), "state", "x")
            check.delete(self.key("job", "probe"))
        finally:
            check.close()
        w = self.start_worker(EXPORT_REDIS_URL=url, EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(w)
        jid = "nope-1"
        doc = self.enqueue(plain_job(jid), status=False)
        entry = self.wait_dead(doc)
        print("\n  P:dead error: %s" % entry.get("error"))
        self.assertRegex(entry.get("error", ""), r"NOPERM")
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        self.assert_goes_on()
        self.assert_logged_once(w, r"NOPERM")

    def test_non_integer_stats_field(self):
        self.r.hset(self.key("stats"), "jobs_succeeded", "abc")
        w = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(w)
        jid = "badstats"
        doc = self.enqueue(plain_job(jid))
        entry = self.wait_dead(doc)
        print("\n  P:dead error: %s; status %r" % (entry.get("error"), self.status(jid)))
        self.assertRegex(entry.get("error", ""), r"(?i)not an integer|jobs_succeeded|stats")
        st = self.assert_nothing_half_written(jid)
        with self.subTest("the status says the job ended"):
            # Only the stats field is broken: the status can say how it ended,
            # and a job left "running" keeps its backend waiting for ever.
            self.assertEqual(st.get("state"), "failed",
                             "the job is in P:dead but its status says %r" % st.get("state"))
            self.assertRegex(st.get("error", ""), r"(?i)not an integer|jobs_succeeded|stats",
                             st)
        stats = {k.decode(): v.decode() for k, v in self.r.hgetall(self.key("stats")).items()}
        self.assertEqual(stats.get("jobs_succeeded"), "abc", stats)
        self.assertNotIn("bytes_out", stats, "the success's counters were half applied: %r"
                         % stats)
        self.assert_logged_once(w, r"not an integer")
        self.r.hset(self.key("stats"), "jobs_succeeded", "0")
        self.assert_goes_on()

    # -- transient ---------------------------------------------------------------
    def test_busy_script_at_the_start(self):
        """Redis answers BUSY (a slow script, busy-reply-threshold 100 ms)
        while the worker starts a job it has just taken: the job succeeds
        afterwards, not dead-lettered, not failed."""
        self.r.config_set("busy-reply-threshold", 100)
        self.addCleanup(self.r.config_set, "busy-reply-threshold", 5000)
        w = self.start_worker()
        self.addCleanup(lambda: w.running() and w.signal(signal.SIGCONT))
        self.wait_registered(w)
        time.sleep(0.3)
        busy_before = self.error_count("BUSY")
        w.signal(signal.SIGSTOP)
        job = plain_job("busy")
        doc = self.enqueue(job)
        port = self.r.connection_pool.connection_kwargs["port"]
        blocker = redis.Redis(host="127.0.0.1", port=port, socket_timeout=15)
        loop = ("local t0 = redis.call('TIME')\n"
                "local start = t0[1] * 1000000 + t0[2]\n"
                "while true do\n"
                "  local t = redis.call('TIME')\n"
                "  if t[1] * 1000000 + t[2] - start > 2000000 then break end\n"
                "end\n"
                "return 1\n")
        done = threading.Event()

        def run_loop():
            try:
                blocker.eval(loop, 0)
            finally:
                done.set()
        thread = threading.Thread(target=run_loop, daemon=True)
        thread.start()
        time.sleep(0.3)
        w.signal(signal.SIGCONT)
        self.assertTrue(done.wait(10), "the busy script did not end")
        thread.join(5)
        blocker.close()
        busy = self.error_count("BUSY") - busy_before
        st = self.wait_end("busy", doc, timeout=30)
        print("\n  BUSY replies during the script: %d; job %s, attempts %s"
              % (busy, st.get("state"), st.get("attempts")))
        self.assertGreater(busy, 0, "the worker met no BUSY reply: the test proves nothing")
        self.assert_workbook(st, job)
        self.assertEqual(st.get("attempts"), "1", st)
        self.assertEqual(self.r.llen(self.key("dead")), 0, self.dead_entries())
        self.assertEqual(self.stats().get("jobs_succeeded"), 1, self.stats())
        self.assert_queues_empty()
        self.assertTrue(w.running(), "the worker exited")

    def test_injected_transient_errors(self):
        """Through the fault proxy: BUSY on the start, MASTERDOWN on
        progress, TRYAGAIN on a take, LOADING and READONLY on the finish.
        Each is retried; the job succeeds once, with attempts 1."""
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = RespProxy(port)
        self._at_end.append(proxy.stop)
        rules = {
            "start": proxy.inject_error(script("start"), b"BUSY Redis is busy running a script. "
                                        b"You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
                                        times=3),
            "progress": proxy.inject_error(script("progress"), b"MASTERDOWN Link with MASTER "
                                           b"is down and replica-serve-stale-data is set to "
                                           b"'no'.", times=1),
            "finish": proxy.inject_error(script("finish"), b"LOADING Redis is loading the "
                                         b"dataset in memory", times=2),
        }
        mock = self.start_mock(latency_ms=200)
        w = self.start_worker(mock, EXPORT_REDIS_URL=proxy.url(), EXPORT_POOL_SIZE=2,
                              EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(w, timeout=10)
        rules["take"] = proxy.inject_error(command("BLMOVE"), b"TRYAGAIN Multiple keys request "
                                           b"during rehashing of slot", times=1)
        rules["finish-readonly"] = proxy.inject_error(
            script("finish"), b"READONLY You can't write against a read only replica.",
            times=1)
        job = harness.lookup_job_doc("transient", ["T-%d" % i for i in range(20)])
        doc = self.enqueue(job)
        st = self.wait_end("transient", doc, timeout=40)
        hits = {name: len(rule.hits) for name, rule in rules.items()}
        print("\n  errors injected: %s; job %s" % (hits, st.get("state")))
        self.assert_workbook(st, job)
        self.assertEqual(st.get("attempts"), "1", st)
        self.assertEqual(self.r.llen(self.key("dead")), 0, self.dead_entries())
        self.assertEqual(self.stats().get("jobs_succeeded"), 1, self.stats())
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        missing = [name for name, rule in rules.items() if not rule.hits]
        self.assertEqual(missing, [], "errors never injected (scripts known: %s; commands "
                         "seen: %s)" % (", ".join(resp_proxy.Scripts().names()),
                                        dict(sorted(proxy.counts.items()))))
        self.assertFalse([line for line in self.log_lines(w, r"dead")
                          if re.search(r"BUSY|LOADING|MASTERDOWN|READONLY|TRYAGAIN", line)],
                         "a transient error sent something to P:dead")


if __name__ == "__main__":
    harness.main()
