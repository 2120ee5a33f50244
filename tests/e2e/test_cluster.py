"""Redis Cluster: 3 primaries and 3 replicas on loopback (topology.py).

- Workers pointed at a node that does not own the prefix's slot, and at the
  owner itself, run jobs; the owner is killed (-9) while jobs are pushed
  through a cluster-aware client (redis-py's RedisCluster): a replica takes
  over, every job that reached it succeeds, none is lost, and both workers
  live on, the one whose URL names the dead node included. The time from the
  owner's death to the next job running is printed.
- A slot migrated by hand (CLUSTER SETSLOT ... MIGRATING / IMPORTING):
  exportctl's commands get through by ASK, then a worker runs the job.
- A prefix without a hash tag, or a database other than 0: the worker and
  exportctl refuse to start (exit 2), saying why; an unreachable cluster is
  exit 5 for exportctl.
"""

import json
import os
import re
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


class Pusher(threading.Thread):
    """Pushes one job every @interval seconds through a RedisCluster client,
    as a web backend would: the queued status, the document, then WAIT for
    the replica (for at most 0.5 s). A push that fails is tried again (the same id) on a new
    client: redis-py 4.3's RedisCluster does not always recover by itself
    from the death of a node. .confirmed holds the ids whose push a replica
    acknowledged."""

    def __init__(self, test, cluster, make_job, interval=0.15):
        super().__init__(daemon=True)
        self.test, self.cluster, self.make_job, self.interval = test, cluster, make_job, interval
        self.rc = None
        self.ids, self.confirmed, self.errors = [], set(), []
        self.stop_flag = threading.Event()

    def push(self, job):
        if self.rc is None:
            self.rc = self.cluster.cluster_client()
        key = self.test.key("job", job["id"])
        try:
            self.rc.hset(key, mapping={"state": "queued", "queued_at": now_ms()})
            self.rc.lpush(self.test.key("queue"), json.dumps(job))
            node = self.rc.get_node_from_key(key)
            # Within the client's socket timeout: after the failover the new
            # owner has no replica, and WAIT then says 0 when it times out.
            return self.rc.execute_command("WAIT", 1, 500, target_nodes=node)
        except Exception:
            self.rc = None
            raise

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            job = self.make_job("c-%03d" % n)
            n += 1
            self.ids.append(job["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop_flag.is_set():
                try:
                    if self.push(job) >= 1:
                        self.confirmed.add(job["id"])
                    break
                except Exception as e:  # noqa: BLE001 - a backend retries any failure
                    self.errors.append("%s: %s" % (job["id"], e))
                    time.sleep(0.2)
            self.stop_flag.wait(self.interval)


class ClusterTest(RobustTest):

    def setUp(self):
        super().setUp()
        self.cluster = topology.Cluster(self.tmp)
        self._at_end.append(self.cluster.stop)
        self.r.close()
        self.r = self.cluster.cluster_client()
        self.prefix = "{%s}" % self.prefix
        self.slot = self.cluster.keyslot(self.prefix + ":queue")

    def run_ctl(self, args, env, timeout=30):
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update(env)
        p = subprocess.run([os.environ["EXW_CTL_BIN"]] + list(args), env=full,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def job(self, jid, keys=("K-1", "K-2")):
        return lookup_job_doc(jid, list(keys))

    def test_failover_of_the_slot_owner(self):
        mock = self.start_mock(latency_ms=150)
        owner = self.cluster.owner(self.slot)
        other = [p for p in self.cluster.primaries() if p != owner][0]
        # One worker names a node that does not own the slot, one the owner,
        # which is the node about to die.
        wa = self.start_worker(mock, EXPORT_REDIS_URL=self.cluster.url(other))
        wb = self.start_worker(mock, EXPORT_REDIS_URL=self.cluster.url(owner))
        for w in (wa, wb):
            self.wait_until("worker %s registered" % w.id,
                            lambda w=w: self.r.sismember(self.key("workers"), w.id), 15)
        first = self.job("c-first")
        self.enqueue(first)
        self.assert_workbook(self.wait_state("c-first", timeout=30), first)

        pusher = Pusher(self, self.cluster, self.job)
        pusher.start()
        self.wait_until("a few jobs pushed", lambda: len(pusher.confirmed) >= 5, 20)
        killed_at = now_ms()
        self.cluster.nodes[owner].kill9()
        new_owner = topology.wait_for(
            "a replica to take the slot over",
            lambda: (lambda o: o if o not in (None, owner) else None)(
                self.cluster.owner(self.slot, ask=other)), 30)
        switched_at = now_ms()
        # Jobs keep coming until a few have been pushed since the takeover.
        count = len(pusher.ids)
        self.wait_until("jobs pushed after the takeover",
                        lambda: len(pusher.ids) >= count + 12, 60, interval=0.2)
        pusher.stop_flag.set()
        pusher.join(40)
        self.assertFalse(pusher.is_alive())
        # A fresh client, for the same reason as the pusher's.
        self.r.close()
        self.r = self.cluster.cluster_client()

        jobs = {jid: self.job(jid) for jid in pusher.ids}
        present = {jid for jid in pusher.ids if self.r.exists(self.key("job", jid))}
        # A push the replica acknowledged reached the new owner.
        self.assertLessEqual(pusher.confirmed, present,
                             "acknowledged jobs missing on the new owner")
        done = self.wait_all(sorted(present), timeout=90)
        for jid in sorted(present):
            self.assert_workbook(done[jid], jobs[jid])
        self.assert_queues_empty()
        lost = sorted(set(pusher.ids) - present)
        starts = sorted(int(st["started_at"]) for st in done.values()
                        if int(st.get("started_at", "0")) > killed_at)
        self.assertTrue(starts, "no job started after the owner died")
        gap_kill = (starts[0] - killed_at) / 1000
        gap_switch = (starts[0] - switched_at) / 1000
        print("\ncluster failover: owner %d -> %d; %d jobs pushed, %d acknowledged, %d never "
              "reached the new owner; slot taken over %.2f s after the kill; next job running "
              "%.2f s after the kill (%.2f s after the takeover)"
              % (owner, new_owner, len(pusher.ids), len(pusher.confirmed), len(lost),
                 (switched_at - killed_at) / 1000, gap_kill, gap_switch))
        self.assertLessEqual(gap_switch, 10, "jobs did not flow within 10 s of the takeover")
        # Both workers live and ran jobs after the failover.
        for w in (wa, wb):
            self.assertTrue(w.running(), "worker %s exited" % w.id)
        ran = {st.get("worker") for st in done.values()
               if int(st.get("started_at", "0")) > switched_at}
        self.assertEqual(ran, {wa.id, wb.id}, "not every worker ran jobs after the failover")
        new_addr = "127.0.0.1:%d" % new_owner
        for w in (wa, wb):
            lines = self.log_lines(w, r"Redis primary switched from .* to %s" % re.escape(new_addr))
            self.assertEqual(len(lines), 1, "worker %s: switch lines %r" % (w.id, lines))
        self.assertIn("127.0.0.1:%d to %s" % (owner, new_addr),
                      self.log_lines(wb, "Redis primary switched")[0])

    def test_ask_during_a_migration(self):
        prefix, slot = self.prefix, self.slot
        src = self.cluster.owner(slot)
        dst = [p for p in self.cluster.primaries() if p != src][0]
        src_id, dst_id = self.cluster.node_id(src), self.cluster.node_id(dst)
        env = {"EXPORT_REDIS_URL": self.cluster.url(src), "EXPORT_PREFIX": prefix}
        job = {"id": "ask-1", "columns": [{"header": "N", "field": "n", "type": "integer"}],
               "rows": [{"n": 1}, {"n": 2}]}
        path = os.path.join(self.tmp, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        rc, out, err = self.run_ctl(["enqueue", path], env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "ask-1")
        # The slot migrates by hand, as redis-cli --cluster reshard does it,
        # and stops half-way: the job's status has moved, the queue not.
        topology.client(dst).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        topology.client(src).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        status_key = prefix + ":job:ask-1"
        topology.client(src).execute_command("MIGRATE", "127.0.0.1", dst, status_key, 0, 5000)
        # The source answers ASK for the status; exportctl asks the target.
        rc, out, err = self.run_ctl(["status", "--json", "ask-1"], env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["state"], "queued")
        # A write by ASK, on one key: cancel sets the flag on the target.
        before = topology.client(dst).info("commandstats").get("cmdstat_asking", {}).get(
            "calls", 0)
        rc, out, err = self.run_ctl(["cancel", "ask-1"], env)
        self.assertEqual(rc, 0, out + err)
        after = topology.client(dst).info("commandstats").get("cmdstat_asking", {}).get(
            "calls", 0)
        self.assertGreater(after, before, "no ASKING reached the importing node")
        c = topology.client(dst)
        c.execute_command("ASKING")
        self.assertEqual(c.hget(status_key, "cancel"), b"1")
        c.execute_command("ASKING")
        c.hdel(status_key, "cancel")
        # The migration ends; a worker pointed at the old owner runs the job.
        topology.client(src).execute_command("MIGRATE", "127.0.0.1", dst, prefix + ":queue", 0,
                                             5000)
        for p in [dst, src] + self.cluster.primaries():
            topology.client(p).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        w = self.start_worker(None, EXPORT_REDIS_URL=self.cluster.url(src))
        st = self.wait_state("ask-1", timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(self.log_lines(w, r"Redis primary is 127\.0\.0\.1:%d" % dst)), 1)

    def test_settings_a_cluster_refuses(self):
        node = self.cluster.primaries()[0]
        env = self.worker_env(None, EXPORT_REDIS_URL=self.cluster.url(node),
                              EXPORT_PREFIX="plain-prefix")
        t0 = time.monotonic()
        rc, out = self.run_worker_once(env=env, timeout=30)
        self.assertEqual(rc, 2, out)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertRegex(out, r"refusing to start: .*cluster node.*EXPORT_PREFIX "
                              r"\\\"plain-prefix\\\" has no hash tag")
        env.update(EXPORT_PREFIX="{x}", EXPORT_REDIS_URL="redis://127.0.0.1:%d/3" % node)
        rc, out = self.run_worker_once(env=env, timeout=30)
        self.assertEqual(rc, 2, out)
        self.assertIn("only database 0", out)

        rc, out, err = self.run_ctl(["queue"], {"EXPORT_REDIS_URL": self.cluster.url(node),
                                                "EXPORT_PREFIX": "plain-prefix"})
        self.assertEqual(rc, 2, err)
        self.assertIn("has no hash tag", err)
        rc, out, err = self.run_ctl(["queue"], {"EXPORT_REDIS_URL": self.cluster.url(node),
                                                "EXPORT_PREFIX": self.prefix})
        self.assertEqual(rc, 0, err)
        # Unreachable: exit 5.
        rc, out, err = self.run_ctl(["queue"], {"EXPORT_REDIS_URL": "redis://127.0.0.1:%d/0"
                                                % harness.free_port(),
                                                "EXPORT_PREFIX": self.prefix})
        self.assertEqual(rc, 5, err)

    def test_watch_and_the_python_client(self):
        """exportctl watch (pub/sub on a second connection) and the Python
        client on RedisCluster, with a worker on a node that does not own
        the slot."""
        import exportclient
        owner = self.cluster.owner(self.slot)
        other = [p for p in self.cluster.primaries() if p != owner][0]
        self.start_worker(self.start_mock(latency_ms=100),
                          EXPORT_REDIS_URL=self.cluster.url(other))
        client = exportclient.Client(self.r, prefix=self.prefix)
        jid = client.enqueue(self.job("py-1"))
        rc, out, err = self.run_ctl(["watch", "--timeout", "30", jid],
                                    {"EXPORT_REDIS_URL": self.cluster.url(other),
                                     "EXPORT_PREFIX": self.prefix}, timeout=60)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("succeeded", out)
        st = client.wait(jid, timeout=30)
        self.assertEqual(st["state"], "succeeded")
        self.assertTrue(client.fetch(jid).startswith(b"PK"))


if __name__ == "__main__":
    harness.main()
