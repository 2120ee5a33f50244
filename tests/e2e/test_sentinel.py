"""Redis Sentinel: one primary, one replica and three sentinels on loopback
(topology.py).

- The primary is killed (-9) during a stream of jobs pushed through the
  sentinels (redis-py's Sentinel.master_for): every job that reached the new
  primary succeeds, none is lost, the worker lives and logs the switch once
  with the old and new address, and jobs flow again within a few seconds of
  the switch (the gap is printed).
- The same with passwords on the data nodes (in the URL, which names no
  host) and on the sentinels (EXPORT_REDIS_SENTINEL_PASSWORD): neither
  appears in any log.
- exportctl and the Python client (exportclient.redis_from_env) through the
  sentinels; exportctl exits 5 when no sentinel answers.
"""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc, now_ms  # noqa: E402
import topology  # noqa: E402

DATA_PASSWORD = "data-pw-Zq81"
SENTINEL_PASSWORD = "sentinel-pw-Xk42"


class Pusher(threading.Thread):
    """Pushes one job every @interval seconds through the sentinels, as a web
    backend would: the queued status, the document, then WAIT (at most 0.5 s)
    for the replica. A push that fails is tried again with the same id.
    .confirmed holds the ids a replica acknowledged."""

    def __init__(self, test, group, make_job, interval=0.15):
        super().__init__(daemon=True)
        self.test, self.r, self.make_job, self.interval = test, group.redis_py(), make_job, interval
        self.ids, self.confirmed, self.errors = [], set(), []
        self.stop_flag = threading.Event()

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            job = self.make_job("s-%03d" % n)
            n += 1
            self.ids.append(job["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop_flag.is_set():
                try:
                    p = self.r.pipeline(transaction=True)
                    p.hset(self.test.key("job", job["id"]),
                           mapping={"state": "queued", "queued_at": now_ms()})
                    p.lpush(self.test.key("queue"), json.dumps(job))
                    p.execute()
                    if self.r.execute_command("WAIT", 1, 500) >= 1:
                        self.confirmed.add(job["id"])
                    break
                except Exception as e:  # noqa: BLE001 - a backend retries any failure
                    self.errors.append("%s: %s" % (job["id"], e))
                    time.sleep(0.2)
            self.stop_flag.wait(self.interval)


class SentinelTest(RobustTest):

    def start_group(self, **kwargs):
        group = topology.SentinelGroup(self.tmp, **kwargs)
        self._at_end.append(group.stop)
        self.group = group
        self.r.close()
        self.r = group.redis_py()
        return group

    def sentinel_env(self, group, **extra):
        env = {"EXPORT_REDIS_URL": ("redis://:%s@/0" % group.password if group.password
                                    else "redis:///0"),
               "EXPORT_REDIS_SENTINELS": group.sentinels_env(),
               "EXPORT_REDIS_MASTER": group.name}
        if group.sentinel_password:
            env["EXPORT_REDIS_SENTINEL_PASSWORD"] = group.sentinel_password
        env.update(extra)
        return env

    def run_ctl(self, args, env, timeout=30):
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update(env)
        p = subprocess.run([os.environ["EXW_CTL_BIN"]] + list(args), env=full,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def job(self, jid):
        return lookup_job_doc(jid, ["K-1", "K-2"])

    def failover(self, **group_kwargs):
        group = self.start_group(**group_kwargs)
        mock = self.start_mock(latency_ms=150)
        old = group.primary_addr()
        self.assertEqual(old, group.primary_port)
        w = self.start_worker(mock, **self.sentinel_env(group, EXPORT_CONCURRENCY=2))
        self.wait_until("the worker registered",
                        lambda: self.r.sismember(self.key("workers"), w.id), 15)
        first = self.job("s-first")
        self.enqueue(first)
        self.assert_workbook(self.wait_state("s-first", timeout=30), first)

        pusher = Pusher(self, group, self.job)
        pusher.start()
        self.wait_until("a few jobs pushed", lambda: len(pusher.confirmed) >= 5, 20)
        killed_at = now_ms()
        group.data[old].kill9()
        new = topology.wait_for("the sentinels to name a new primary",
                                lambda: (lambda p: p if p not in (None, old) else None)(
                                    group.primary_addr()), 30)
        switched_at = now_ms()
        count = len(pusher.ids)
        self.wait_until("jobs pushed after the switch",
                        lambda: len(pusher.ids) >= count + 12, 60, interval=0.2)
        pusher.stop_flag.set()
        pusher.join(40)
        self.assertFalse(pusher.is_alive())

        jobs = {jid: self.job(jid) for jid in pusher.ids}
        present = {jid for jid in pusher.ids if self.r.exists(self.key("job", jid))}
        self.assertLessEqual(pusher.confirmed, present,
                             "acknowledged jobs missing on the new primary")
        done = self.wait_all(sorted(present), timeout=90)
        for jid in sorted(present):
            self.assert_workbook(done[jid], jobs[jid])
        self.assert_queues_empty()
        self.assertTrue(w.running(), "the worker exited")
        starts = sorted(int(st["started_at"]) for st in done.values()
                        if int(st.get("started_at", "0")) > killed_at)
        self.assertTrue(starts, "no job started after the primary died")
        gap_switch = (starts[0] - switched_at) / 1000
        print("\nsentinel failover%s: primary %d -> %d; %d jobs pushed, %d acknowledged, %d "
              "never reached the new primary; new primary named %.2f s after the kill; next "
              "job running %.2f s after the kill (%.2f s after the switch)"
              % (" with passwords" if group.password else "", old, new, len(pusher.ids),
                 len(pusher.confirmed), len(set(pusher.ids) - present),
                 (switched_at - killed_at) / 1000, (starts[0] - killed_at) / 1000, gap_switch))
        self.assertLessEqual(gap_switch, 10, "jobs did not flow within 10 s of the switch")
        lines = self.log_lines(w, r"Redis primary switched")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("from 127.0.0.1:%d to 127.0.0.1:%d" % (old, new), lines[0])
        self.assertEqual(len(self.log_lines(w, r"Redis primary is 127\.0\.0\.1:%d" % old)), 1)
        return w

    def test_failover(self):
        self.failover()

    def test_failover_with_passwords(self):
        w = self.failover(password=DATA_PASSWORD, sentinel_password=SENTINEL_PASSWORD)
        rc, took = w.stop()
        self.assertEqual(rc, 0)
        log = w.log()
        self.assertIn("redis-sentinel-password=***", log)
        for secret in (DATA_PASSWORD, SENTINEL_PASSWORD):
            self.assertNotIn(secret, log)

    def test_exportctl_and_the_python_client(self):
        import exportclient
        group = self.start_group(password=DATA_PASSWORD, sentinel_password=SENTINEL_PASSWORD)
        env = self.sentinel_env(group, EXPORT_PREFIX=self.prefix)
        self.start_worker(self.start_mock(latency_ms=50), **self.sentinel_env(group))

        # The Python client, built from the same variables.
        r = exportclient.redis_from_env(env)
        client = exportclient.Client(r, prefix=self.prefix)
        jid = client.enqueue(self.job("py-1"))
        self.assertEqual(client.wait(jid, timeout=30)["state"], "succeeded")
        self.assertTrue(client.fetch(jid).startswith(b"PK"))
        r.close()

        # exportctl: watch (pub/sub on a second connection), queue.
        job = self.job("ctl-1")
        path = os.path.join(self.tmp, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        rc, out, err = self.run_ctl(["enqueue", "--wait", "--timeout", "30", path], env, 60)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("succeeded", out)
        rc, out, err = self.run_ctl(["queue", "--json"], env)
        self.assertEqual(rc, 0, err)
        for text in (out, err):
            self.assertNotIn(DATA_PASSWORD, text)
            self.assertNotIn(SENTINEL_PASSWORD, text)
        # A wrong sentinel password, and no sentinel at all: exit 5.
        rc, out, err = self.run_ctl(["queue"], dict(env, EXPORT_REDIS_SENTINEL_PASSWORD="nope"))
        self.assertEqual(rc, 5, err)
        self.assertIn("no sentinel named the primary", err)
        rc, out, err = self.run_ctl(["queue"], dict(
            env, EXPORT_REDIS_SENTINELS="127.0.0.1:%d" % harness.free_port()))
        self.assertEqual(rc, 5, err)
        self.assertNotIn(SENTINEL_PASSWORD, err)


if __name__ == "__main__":
    harness.main()
