"""The worker's life: cancellation, shutdown on SIGTERM/SIGINT, heartbeats,
recovery of a dead worker's job, attempts, logs and configuration."""

import json
import os
import signal
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402


def lookup_job(jid, nkeys, rows_per_key=1):
    return {
        "id": jid,
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [{"header": "SN", "field": "sn"},
                    {"header": "Name", "lookup": "/name"},
                    {"header": "Ratio", "lookup": "/discount/ratio", "type": "number"}],
        "rows": [{"sn": "K-%04d" % (i % nkeys)} for i in range(nkeys * rows_per_key)],
    }


def plain_job(jid):
    return {"id": jid, "columns": [{"header": "A", "field": "a", "type": "integer"}],
            "rows": [{"a": i} for i in range(3)]}


class Cancellation(E2ETest):

    def test_cancel_before_start(self):
        mock = self.start_mock()
        worker = self.start_worker(mock)
        jid = "cancel-queued"
        events = harness.Events(self.r, self.key("events"))
        self.enqueue(lookup_job(jid, 20), cancel="1")
        st = self.wait_state(jid)
        time.sleep(0.1)
        events.stop()
        mine = [json.loads(m) for _, m in events.messages if json.loads(m).get("id") == jid]
        self.assertTrue(mine and mine[-1]["state"] == "cancelled", mine)
        self.assertEqual(st["state"], "cancelled", st)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assertNotIn("result_key", st)
        self.assertEqual(mock.lookups(), 0, "a job cancelled before it ran looked keys up")
        self.assertEqual(self.stats().get("jobs_cancelled"), 1)
        ttl = self.r.ttl(self.key("job", jid))
        self.assertTrue(0 < ttl <= 86400, "status TTL %d" % ttl)
        self.assert_left_processing(worker)
        self.run_job(plain_job("after"))

    def test_cancel_while_running(self):
        mock = self.start_mock(latency_ms=2000)
        worker = self.start_worker(mock, EXPORT_POOL_SIZE=4)
        jid = "cancel-running"
        self.enqueue(lookup_job(jid, 200))
        st = self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=10)
        self.assertEqual(st["state"], "running", st)
        time.sleep(0.5)
        t0 = time.monotonic()
        self.r.hset(self.key("job", jid), "cancel", "1")
        st = self.wait_state(jid, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(st["state"], "cancelled", st)
        # Seen within a second; in-flight requests (2 s each) are cut short or abandoned.
        self.assertLess(took, 2.5, "cancelled %.1f s after the request" % took)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assertNotIn("result_key", st)
        time.sleep(2.5)  # any lookup still queued would have been sent by now
        self.assertLessEqual(mock.lookups(), 12, "lookups went on after the cancel")
        self.assertEqual(self.stats().get("jobs_cancelled"), 1)
        self.assert_left_processing(worker)
        self.run_job(plain_job("after"))


class Shutdown(E2ETest):

    def test_sigterm_requeues_a_job_that_outlasts_the_grace(self):
        mock = self.start_mock(latency_ms=2000)
        w1 = self.start_worker(mock, EXPORT_POOL_SIZE=2, EXPORT_SHUTDOWN_GRACE=1)
        jid = "long"
        doc = self.enqueue(lookup_job(jid, 40))
        st = self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=10)
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(st["attempts"], "1")
        other = self.enqueue(plain_job("other"))  # waits behind the long job
        time.sleep(0.5)
        t0 = time.monotonic()
        w1.signal(signal.SIGTERM)
        rc = w1.wait(1 + 4)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status after SIGTERM (%.1f s)" % took)
        self.assertLess(took, 1 + 3, "exit took %.1f s with a 1 s grace" % took)
        # Back at the end taken next (workers take from the right).
        self.assertEqual(self.r.lrange(self.key("queue"), 0, -1), [other, doc],
                         "the original document is not back on P:queue, taken next")
        st = self.status(jid)
        self.assertEqual(st["state"], "queued", st)
        self.assertIn(st.get("attempts", "0"), ("0",), "that start must not count: %r" % st)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assertEqual(self.r.exists(self.key("processing", w1.id)), 0)
        self.assertEqual(self.r.exists(self.key("worker", w1.id)), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), w1.id))
        # Another worker completes it.
        w2 = self.start_worker(mock, EXPORT_POOL_SIZE=64)
        st = self.wait_state(jid, timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["attempts"], "1")
        self.assertEqual(st["worker"], w2.id)
        ws = self.workbook(self.result_bytes(st)).active
        job = json.loads(doc)
        self.assert_rows(ws, job["columns"], job["rows"], lookup_key="sn")
        st_other = self.wait_state("other")
        self.assertEqual(st_other["state"], "succeeded", st_other)
        self.assertLess(int(st["started_at"]), int(st_other["started_at"]),
                        "the requeued job was not taken first")

    def test_sigterm_lets_a_short_job_finish(self):
        mock = self.start_mock(latency_ms=1000)
        w = self.start_worker(mock, EXPORT_SHUTDOWN_GRACE=8)
        jid = "short"
        self.enqueue(lookup_job(jid, 10))
        self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=10)
        self.enqueue(plain_job("next"))  # must stay queued: no new jobs after SIGTERM
        w.signal(signal.SIGTERM)
        rc = w.wait(8 + 4)
        self.assertEqual(rc, 0)
        st = self.status(jid)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(self.status("next")["state"], "queued")
        self.assertEqual(self.r.llen(self.key("queue")), 1)
        self.assertEqual(self.r.exists(self.key("worker", w.id)), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), w.id))

    def test_idle_worker_exits_0_on_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            w = self.start_worker()
            self.wait_until("heartbeat", lambda: self.r.exists(self.key("worker", w.id)))
            t0 = time.monotonic()
            w.signal(sig)
            rc = w.wait(5)
            self.assertEqual(rc, 0, "exit status after %s" % sig.name)
            self.assertLess(time.monotonic() - t0, 3, "idle worker slow to stop on %s" % sig.name)
            self.assertEqual(self.r.exists(self.key("worker", w.id)), 0)
            self.assertFalse(self.r.sismember(self.key("workers"), w.id))


class Heartbeat(E2ETest):

    def test_heartbeat_fields_and_ttl(self):
        mock = self.start_mock(latency_ms=1500)
        w = self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=2000)
        hb_key = self.key("worker", w.id)
        self.wait_until("heartbeat", lambda: self.r.exists(hb_key))
        self.assertTrue(self.r.sismember(self.key("workers"), w.id))
        hb = {k.decode(): v.decode() for k, v in self.r.hgetall(hb_key).items()}
        for f in ("host", "pid", "started_at", "job", "jobs_done"):
            self.assertIn(f, hb, hb)
        self.assertTrue(hb["host"], hb)
        self.assertEqual(hb["pid"], str(w.pid))
        self.assertRegex(hb["started_at"], r"^\d{13}$")
        self.assertEqual(hb["job"], "")
        self.assertEqual(hb["jobs_done"], "0")
        pttl = self.r.pttl(hb_key)
        self.assertTrue(0 < pttl <= 10000, "heartbeat TTL %d ms" % pttl)
        # Renewed: it outlives its TTL.
        time.sleep(2.5)
        self.assertEqual(self.r.exists(hb_key), 1, "heartbeat not renewed")
        # The current job, then the count of ended jobs, within one renewal.
        self.enqueue(lookup_job("hb-job", 5))
        self.wait_until("job in heartbeat",
                        lambda: self.r.hget(hb_key, "job") == b"hb-job", timeout=3)
        self.wait_state("hb-job", timeout=15)
        self.wait_until("jobs_done 1", lambda: self.r.hget(hb_key, "jobs_done") == b"1",
                        timeout=3)
        self.wait_until("job empty", lambda: self.r.hget(hb_key, "job") == b"", timeout=3)
        self.enqueue({"id": "hb-fail", "columns": []})
        self.wait_state("hb-fail")
        self.wait_until("jobs_done 2", lambda: self.r.hget(hb_key, "jobs_done") == b"2",
                        timeout=3)
        rc, _ = w.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(self.r.exists(hb_key), 0)
        self.assertFalse(self.r.sismember(self.key("workers"), w.id))

    def test_default_heartbeat_ttl_at_most_10_s(self):
        w = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=None)
        hb_key = self.key("worker", w.id)
        self.wait_until("heartbeat", lambda: self.r.exists(hb_key))
        pttl = self.r.pttl(hb_key)
        self.assertTrue(0 < pttl <= 10000, "heartbeat TTL %d ms" % pttl)


class WorkerId(E2ETest):

    def test_default_worker_id_is_host_pid_random(self):
        w = self.start_worker(EXPORT_WORKER_ID=None)
        members = self.wait_until("a member of P:workers",
                                  lambda: self.r.smembers(self.key("workers")))
        self.assertEqual(len(members), 1, members)
        wid = members.pop().decode()
        self.assertRegex(wid, r"^.+-%d-[0-9A-Za-z]+$" % w.pid)
        hb = self.r.hgetall(self.key("worker", wid))
        self.assertEqual(hb.get(b"pid"), str(w.pid).encode())


class RedisAndPrefix(E2ETest):

    def use_redis(self, client):
        """From here on the test (and its teardown) talks to @client."""
        self.r.close()
        self.r = client

    def test_redis_url_database(self):
        port = self.r.connection_pool.connection_kwargs["port"]
        db0 = self.r
        self.use_redis(redis.Redis(host="127.0.0.1", port=port, db=5))
        self.start_worker(EXPORT_REDIS_URL="redis://127.0.0.1:%d/5" % port)
        self.run_job(plain_job("db5"))
        self.assertEqual(db0.dbsize(), 0, "the worker wrote to db 0: %r" % db0.keys())
        db0.close()

    def test_unix_socket_url(self):
        sock = self.start_redis_unix()
        self.use_redis(redis.Redis(unix_socket_path=sock, db=3))
        w = self.start_worker(EXPORT_REDIS_URL="unix://%s?db=3" % sock)
        st = self.run_job(plain_job("unix"))
        self.assertEqual(st["worker"], w.id)
        self.assertTrue(self.r.sismember(self.key("workers"), w.id))

    def test_hash_tag_prefix(self):
        self.prefix = "{%s}" % self.prefix
        mock = self.start_mock()
        w = self.start_worker(mock)
        st = self.run_job(lookup_job("tagged", 5))
        self.assertEqual(st["result_key"], "%s:result:tagged" % self.prefix)
        self.assertTrue(self.r.exists(self.key("worker", w.id)))
        self.assertGreaterEqual(self.stats().get("jobs_succeeded", 0), 1)


class Queue(E2ETest):

    def test_fifo(self):
        jids = ["fifo-%02d" % i for i in range(10)]
        for jid in jids:
            self.enqueue(plain_job(jid))
        self.start_worker()
        starts = []
        for jid in jids:
            st = self.wait_state(jid)
            self.assertEqual(st["state"], "succeeded", st)
            starts.append(int(st["started_at"]))
        self.assertEqual(starts, sorted(starts), "jobs did not start in enqueue order")

    def test_two_workers_share_the_queue(self):
        mock = self.start_mock(latency_ms=200)
        workers = [self.start_worker(mock, EXPORT_POOL_SIZE=8) for _ in range(2)]
        jids = ["shared-%02d" % i for i in range(20)]
        for jid in jids:
            self.enqueue(lookup_job(jid, 5))
        ran_on = set()
        for jid in jids:
            st = self.wait_state(jid, timeout=60)
            self.assertEqual(st["state"], "succeeded", st)
            self.assertEqual(st["attempts"], "1", st)
            ran_on.add(st["worker"])
        self.assertLessEqual(ran_on, {w.id for w in workers})
        self.assertEqual(mock.lookups(), 20 * 5, "a job ran twice, or looked a key up twice")
        self.assertEqual(self.stats().get("jobs_succeeded"), 20)
        for w in workers:
            self.assert_left_processing(w)


class Recovery(E2ETest):

    def test_dead_workers_job_is_recovered(self):
        mock = self.start_mock(latency_ms=2000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_HEARTBEAT_TTL_MS=1000)
        jid = "orphan"
        doc = self.enqueue(lookup_job(jid, 10))
        st = self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=10)
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(self.r.lrange(self.key("processing", a.id), 0, -1), [doc])
        a.kill9()
        t_dead = time.monotonic()
        b = self.start_worker(mock, EXPORT_POOL_SIZE=64, EXPORT_HEARTBEAT_TTL_MS=1000)
        st = self.wait_state(jid, timeout=20)
        self.assertEqual(st["state"], "succeeded", st)
        # Back on the queue within 2 x TTL of the last renewal, then 2 s of lookups.
        self.assertLess(time.monotonic() - t_dead, 2 * 1.0 + 2.0 + 2.5)
        self.assertEqual(st["attempts"], "2")
        self.assertEqual(st["worker"], b.id)
        self.assertEqual(self.r.exists(self.key("processing", a.id)), 0)
        self.wait_until("dead worker leaves P:workers",
                        lambda: not self.r.sismember(self.key("workers"), a.id), timeout=5)
        job = json.loads(doc)
        self.assert_rows(self.workbook(self.result_bytes(st)).active, job["columns"],
                         job["rows"], lookup_key="sn")

    def test_out_of_attempts_goes_to_dead(self):
        mock = self.start_mock(latency_ms=2000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_HEARTBEAT_TTL_MS=1000,
                              EXPORT_MAX_ATTEMPTS=1)
        jid = "doomed"
        doc = self.enqueue(lookup_job(jid, 10))
        self.wait_state(jid, ("running",), timeout=10)
        a.kill9()
        self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=1000, EXPORT_MAX_ATTEMPTS=1)
        st = self.wait_state(jid, timeout=20)
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["error_code"], "too_many_attempts", st)
        dead = [json.loads(e) for e in self.r.lrange(self.key("dead"), 0, -1)]
        self.assertEqual([d["job"] for d in dead], [doc.decode()])
        self.assertEqual(self.stats().get("jobs_dead"), 1)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)


class Process(E2ETest):

    def test_help(self):
        rc, out = self.run_worker_once(["--help"])
        self.assertEqual(rc, 0, out)
        self.assertIn("EXPORT_REDIS_URL", out)

    def test_bad_config_exits_2_naming_each_variable(self):
        env = self.worker_env(None, EXPORT_POOL_SIZE=0)
        rc, out = self.run_worker_once(env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn("EXPORT_POOL_SIZE", out)
        env = self.worker_env(None, EXPORT_POOL_SIZE="lots", EXPORT_LOG_FORMAT="xml",
                              EXPORT_MAX_ATTEMPTS="-1")
        rc, out = self.run_worker_once(env=env)
        self.assertEqual(rc, 2, out)
        for name in ("EXPORT_POOL_SIZE", "EXPORT_LOG_FORMAT", "EXPORT_MAX_ATTEMPTS"):
            self.assertIn(name, out)
        rc, out = self.run_worker_once(env=self.worker_env(None, EXPORT_REDIS_URL="http://x"))
        self.assertEqual(rc, 2, out)
        self.assertIn("EXPORT_REDIS_URL", out)

    def test_json_logs_one_object_per_line(self):
        w = self.start_worker(self.start_mock(), EXPORT_LOG_FORMAT="json")
        self.run_job(plain_job("j1"))
        self.enqueue({"id": "j2", "columns": []})
        self.wait_state("j2")
        rc, _ = w.stop()
        self.assertEqual(rc, 0)
        lines = w.log().splitlines()
        self.assertTrue(lines, "the worker logged nothing")
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail("not a JSON line: %r" % line)
            self.assertIsInstance(obj, dict, line)

    def test_secrets_never_logged(self):
        user, password = "exwtest", "pw-%s" % self.prefix[-8:]
        self.r.execute_command("ACL", "SETUSER", user, "on", ">" + password, "~*", "&*",
                               "+@all")
        self.addCleanup(self.r.execute_command, "ACL", "DELUSER", user)
        port = self.r.connection_pool.connection_kwargs["port"]
        url = "redis://%s:%s@127.0.0.1:%d/0" % (user, password, port)
        auth = "Bearer tok-%s" % self.prefix[-8:]
        mock = self.start_mock("--auth", auth)
        w = self.start_worker(mock, EXPORT_REDIS_URL=url, EXPORT_SERVICE_TETHER_AUTH=auth,
                              EXPORT_LOG_LEVEL="debug", EXPORT_LOG_FORMAT="text")
        st = self.run_job(lookup_job("secret", 3))
        self.assertEqual(st["lookups_failed"], "0")
        w.stop()
        log = w.log()
        self.assertTrue(log)
        self.assertNotIn(password, log)
        self.assertNotIn("tok-" + self.prefix[-8:], log)


if __name__ == "__main__":
    harness.main()
