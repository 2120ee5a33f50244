"""The worker runs under a Redis ACL user limited to P:* keys, the P:events
channel and the commands it needs: the rule of docs/operations.md ("Access
control"), read from that page, with the test's prefix in place of export.

On a redis-server of this test's own, workers as that user complete jobs
(with lookups, rows_key, invalid ones, dead letters, too many attempts,
cancellations), put a job back at shutdown, recover a killed worker's job (the
recovery script reaches other workers' keys that it builds from the prefix, so
ACL key patterns apply to keys not declared in KEYS) and select a database;
Redis' ACL LOG then holds no denial of theirs but the optional CONFIG GET.
A client as that user is refused every key and channel outside P:, inside a
script too, and every command outside the list.
"""

import base64
import json
import os
import re
import sys
import uuid

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402
import corpus_util  # noqa: E402

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                    "operations.md")


def documented_rule():
    """(user, [rule words]) of the ACL SETUSER line in docs/operations.md."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^ACL SETUSER (\S+) (.+)$", text, re.M)
    if not m:
        raise AssertionError("docs/operations.md has no 'ACL SETUSER' line")
    return m.group(1), m.group(2).split()


class Acl(E2ETest):

    def setUp(self):
        super().setUp()
        self.own = corpus_util.OwnRedis()
        self._at_end.append(self.own.stop)
        self.admin = self.own.client()
        self.r.close()
        self.r = self.admin  # the harness's helpers read the own server as admin
        self.user = "exw"
        self.password = "pw-" + uuid.uuid4().hex

    def rule_for_prefix(self):
        """The documented rule with this test's prefix and password."""
        _, words = documented_rule()
        out = []
        for w in words:
            if w.startswith(">"):
                w = ">" + self.password
            w = w.replace("export:", self.prefix + ":")
            out.append(w)
        return out

    def set_user(self, words):
        self.admin.execute_command("ACL", "SETUSER", self.user, "reset", *words)

    def acl_denials(self):
        """ACL LOG entries of the worker's user: [(reason, object)]."""
        out = []
        for e in self.admin.acl_log():
            if e.get("username") == self.user:
                out.append((e.get("reason"), e.get("object"), e.get("count", 1)))
        return out

    def worker(self, mock, db=0, **env):
        url = self.own.url(user=self.user, password=self.password, db=db)
        return self.start_worker(mock, EXPORT_REDIS_URL=url, EXPORT_HEARTBEAT_TTL_MS=1000,
                                 **env)

    def lookup_job(self, jid, keys, **kw):
        job = {"id": jid, "lookup": {"service": "tether", "key": "k"},
               "columns": [{"header": "K", "field": "k"},
                           {"header": "Score", "lookup": "/score", "type": "integer"}],
               "rows": [{"k": k} for k in keys]}
        job.update(kw)
        return job

    def test_documented_rule_is_enough_and_confines_the_worker(self):
        rule = self.rule_for_prefix()
        self.set_user(rule)
        self.admin.acl_log_reset()
        mock = self.start_mock("--slow", "SLOW*=3000")

        # -- jobs of every kind, on one worker ------------------------------------
        w1 = self.worker(mock)
        self.wait_registered(w1)
        st = self.run_job(self.lookup_job("acl-ok", ["A-1", "A-2", "A-1"]))
        ws = self.workbook(self.result_bytes(st)).active
        self.assert_rows(ws, self.lookup_job("x", [])["columns"],
                         [{"k": k} for k in ["A-1", "A-2", "A-1"]], lookup_key="k")
        rows_key = self.key("rows", "acl-rk")
        self.admin.rpush(rows_key, *[json.dumps({"k": "R-%d" % i}) for i in range(5)])
        job = self.lookup_job("acl-rk", [])
        del job["rows"]
        job["rows_key"] = rows_key
        st = self.run_job(job)
        self.assertEqual(st.get("rows_written"), "5")
        self.assertEqual(self.admin.exists(rows_key), 0, "rows_key not deleted")
        # A result over the 1 MiB upload chunk: SET, then APPEND.
        big_rows = [{"k": None, "t": base64.b64encode(os.urandom(48)).decode()}
                    for _ in range(40000)]
        st = self.run_job({"id": "acl-big", "columns": [{"header": "T", "field": "t"}],
                           "rows": big_rows}, timeout=120)
        self.assertGreater(int(st.get("result_bytes", 0)), 1 << 20,
                           "the result must span two upload chunks")
        self.assertEqual(harness.sha256(self.result_bytes(st)), st.get("result_sha256"))
        st = self.run_job({"id": "acl-invalid", "columns": []}, expect="failed")
        self.assertEqual(st.get("error_code"), "invalid_job")
        self.admin.lpush(self.key("queue"), b"no id here")
        self.enqueue(self.lookup_job("acl-attempts", ["A-1"]), attempts=3)
        st = self.wait_state("acl-attempts")
        self.assertEqual(st.get("error_code"), "too_many_attempts", st)
        self.wait_until("2 dead letters", lambda: self.admin.llen(self.key("dead")) == 2)
        self.enqueue(self.lookup_job("acl-cancel-early", ["A-1"]), cancel=1)
        self.assertEqual(self.wait_state("acl-cancel-early").get("state"), "cancelled")
        self.enqueue(self.lookup_job("acl-cancel", ["SLOW-1", "SLOW-2"]))
        self.wait_state("acl-cancel", states=("running",))
        self.admin.hset(self.key("job", "acl-cancel"), "cancel", 1)
        self.assertEqual(self.wait_state("acl-cancel").get("state"), "cancelled")
        rc, _ = w1.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(self.admin.sismember(self.key("workers"), w1.id), 0,
                         "the worker did not deregister")

        # -- put back at shutdown, then recovered from a killed worker --------------
        w2 = self.worker(mock, EXPORT_SHUTDOWN_GRACE=0)
        self.wait_registered(w2)
        self.enqueue(self.lookup_job("acl-moved", ["SLOW-3"]))
        self.wait_state("acl-moved", states=("running",))
        rc, _ = w2.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(self.status("acl-moved").get("state"), "queued",
                         "not put back at shutdown")
        victim = self.worker(mock)
        self.wait_state("acl-moved", states=("running",))
        self.assertEqual(self.status("acl-moved").get("worker"), victim.id)
        victim.kill9()
        w3 = self.worker(mock)
        st = self.wait_state("acl-moved", timeout=30)
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertEqual(st.get("worker"), w3.id)
        self.assertEqual(st.get("attempts"), "2", st)
        self.assertIn("dead workers back on the queue", w3.log())
        self.assertEqual(self.admin.sismember(self.key("workers"), victim.id), 0)
        w3.stop()

        # -- a database other than 0 (SELECT) ----------------------------------------
        w4 = self.worker(mock, db=5)
        db5 = self.own.client(db=5)
        db5.lpush(self.key("queue"), json.dumps(self.lookup_job("acl-db5", ["D-1"])))
        ok = corpus_util.wait_for(lambda: db5.hget(self.key("job", "acl-db5"), "state")
                                  == b"succeeded", timeout=20)
        self.assertTrue(ok, "the job in database 5 did not succeed: %r"
                        % db5.hgetall(self.key("job", "acl-db5")))
        w4.stop()
        for k in db5.scan_iter(match=self.prefix + ":*"):
            db5.delete(k)
        db5.close()

        # -- what Redis refused the workers -------------------------------------------
        denials = self.acl_denials()
        unexpected = [d for d in denials if d[1] not in ("config|get", "config")]
        self.assertEqual(unexpected, [], "Redis refused the worker's user: %r" % unexpected)
        for w in (w1, w2, w3, w4):
            self.assertNotRegex(w.log(), r"NOPERM|no permissions", w.id)
        print("\nACL rule tried (docs/operations.md, prefix %s): %s" % (self.prefix,
                                                                      " ".join(rule)))
        print("refused: %s" % (sorted(set((d[0], d[1]) for d in denials)) or "nothing"))

    def test_documented_rule_covers_sparing_the_service(self):
        # The caps, the cache and batches (docs/operations.md, "Sparing the
        # lookup service") under the same rule: nothing refused.
        self.set_user(self.rule_for_prefix())
        self.admin.acl_log_reset()
        mock = self.start_mock(latency_ms=20)
        env = dict(EXPORT_SERVICE_TETHER_MAX_INFLIGHT=2, EXPORT_SERVICE_TETHER_RATE=50,
                   EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                   EXPORT_SERVICE_BATCHED_URL=mock.url(),
                   EXPORT_SERVICE_BATCHED_BATCH_URL=mock.base + "/batch/{keys}",
                   EXPORT_SERVICE_BATCHED_BATCH_MAX=5,
                   EXPORT_SERVICE_BATCHED_CACHE_TTL=60)
        w = self.worker(mock, **env)
        self.wait_registered(w)
        keys = ["S-%d" % i for i in range(12)]
        for jid in ("acl-spare-1", "acl-spare-2"):
            st = self.run_job(self.lookup_job(jid, keys))
            ws = self.workbook(self.result_bytes(st)).active
            self.assert_rows(ws, self.lookup_job("x", [])["columns"],
                             [{"k": k} for k in keys], lookup_key="k")
        job = self.lookup_job("acl-spare-b", keys)
        job["lookup"]["service"] = "batched"
        self.run_job(job)
        self.run_job(dict(job, id="acl-spare-b2"))
        self.assertEqual(mock.stats()["lookups"], len(keys) + 3, "cache or batches not used")
        self.assertTrue(self.admin.exists(self.key("cache", "tether", "S-1")))
        self.assertTrue(self.admin.exists(self.key("cache", "batched", "S-1")))
        rc, _ = w.stop()
        self.assertEqual(rc, 0)
        denials = self.acl_denials()
        unexpected = [d for d in denials if d[1] not in ("config|get", "config")]
        self.assertEqual(unexpected, [], "Redis refused the worker's user: %r" % unexpected)
        self.assertNotRegex(w.log(), r"NOPERM|no permissions|cannot be (read|written|reached)")

    def test_the_user_cannot_touch_anything_outside_the_prefix(self):
        self.set_user(self.rule_for_prefix())
        self.admin.set("other:secret", "s")
        self.admin.set("exportx:secret", "s")
        self.admin.hset(self.prefix + "x:job:a", "state", "x")
        self.outside_keys |= {"other:secret", "exportx:secret", self.prefix + "x:job:a"}
        c = self.own.client(username=self.user, password=self.password)
        p = self.prefix
        allowed = [
            ("SET", p + ":probe", "1"), ("EXISTS", p + ":probe"),
            ("PUBLISH", p + ":events", "{}"),
            ("EVAL", "return redis.call('EXISTS', KEYS[1])", "1", p + ":probe"),
            ("DEL", p + ":probe"),
        ]
        c.execute_command("SET", p + ":probe", "1")
        for cmd in allowed:
            with self.subTest(allowed=cmd[0]):
                c.execute_command(*cmd)
        refused = [
            ("GET", "other:secret"), ("SET", "other:secret", "x"), ("DEL", "other:secret"),
            ("EXISTS", "exportx:secret"), ("HSET", p + "x:job:a", "state", "y"),
            ("RENAME", p + ":probe", "other:copy"),
            ("LPUSH", "other:queue", "x"), ("BLMOVE", p + ":queue", "other:list", "RIGHT",
                                            "LEFT", "0.01"),
            ("PUBLISH", "other:events", "{}"), ("PUBLISH", p + ":eventsx", "{}"),
            # Keys a script builds itself, not declared in KEYS, with commands the
            # user may run: refused by the key pattern.
            ("EVAL", "return redis.call('EXISTS', 'other:secret')", "0"),
            ("EVAL", "return redis.call('SET', 'other:written', '1')", "0"),
            ("EVAL", "return redis.call('LPOP', ARGV[1])", "1", p + ":queue", "other:list"),
            ("EVAL", "return redis.call('RENAME', KEYS[1], 'other:copy')", "1", p + ":probe"),
            ("EVAL", "return redis.call('PUBLISH', 'other:events', 'x')", "0"),
            ("EVAL", "return redis.call('GET', KEYS[1])", "1", "other:secret"),
            ("EVAL", "return redis.call('GET', 'other:secret')", "1", p + ":queue"),
            ("KEYS", "*"), ("SCAN", "0"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET",
                                                                         "appendonly", "no"),
            ("CONFIG", "GET", "requirepass"), ("ACL", "LIST"), ("DEBUG", "SLEEP", "0"),
            ("SHUTDOWN", "NOSAVE"), ("CLIENT", "LIST"),
            ("MIGRATE", "127.0.0.1", "1", p + ":probe", "0", "10"),
            ("SUBSCRIBE", p + ":events"), ("GET", p + ":probe"), ("HGETALL", p + ":job:x"),
            ("FUNCTION", "LIST"), ("SCRIPT", "FLUSH"), ("OBJECT", "ENCODING", "other:secret"),
            ("DUMP", "other:secret"), ("SORT", p + ":queue", "BY", "other:*"),
        ]
        leaks = []
        for cmd in refused:
            with self.subTest(refused=" ".join(cmd[:2])):
                try:
                    reply = c.execute_command(*cmd)
                except redis.exceptions.NoPermissionError:
                    continue
                except redis.exceptions.ResponseError as e:
                    if re.search(r"NOPERM|no permissions|The user executing the script can't|"
                                 r"command not allowed", str(e)):
                        continue
                    leaks.append("%s: %s" % (" ".join(cmd), e))
                    continue
                leaks.append("%s: allowed, replied %r" % (" ".join(cmd), reply))
        self.assertEqual(self.admin.get("other:secret"), b"s")
        self.assertEqual(self.admin.exists("other:written", "other:queue", "other:copy",
                                           "other:list"), 0)
        c.close()
        self.assertEqual(leaks, [], "the worker's user may do more than it needs:\n" +
                         "\n".join(leaks))

    def test_without_config_get_the_worker_starts_quietly(self):
        rule = [w for w in self.rule_for_prefix() if w not in ("+config|get", "+config")]
        self.set_user(rule)
        self.admin.config_set("maxmemory-policy", "allkeys-lru")
        mock = self.start_mock()
        w = self.worker(mock)
        self.wait_registered(w)
        self.run_job(self.lookup_job("acl-quiet", ["Q-1"]))
        self.assertTrue(w.running())
        logs = w.log()
        self.assertNotRegex(logs, r'"lvl":"(warn|error)"',
                            "a refused CONFIG GET must be skipped silently")
        # With CONFIG GET allowed, the eviction warning appears.
        self.set_user(rule + ["+config|get"])
        w2 = self.worker(mock)
        self.wait_registered(w2)
        self.wait_until("the eviction warning",
                        lambda: "maxmemory-policy is allkeys-lru" in w2.log(), timeout=5)
        self.admin.config_set("maxmemory-policy", "noeviction")


if __name__ == "__main__":
    harness.main()
