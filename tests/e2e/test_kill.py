"""Workers killed with SIGKILL again and again while jobs run: no job is lost,
none is done wrong, and a dead worker's job starts again within twice the
heartbeat TTL (PROTOCOL.md section 4, Guarantees).

test_lifecycle.py's Recovery tests kill one worker once; this one keeps
killing random workers of a busy pool and replacing them."""

import json
import os
import random
import statistics
import sys
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc, now_ms  # noqa: E402

TTL_MS = 2000
WORKERS = 4
JOBS = harness.scaled(300, 60)
KILL_EVERY_S = 0.5
KILL_FOR_S = 20  # at most; the killing stops once every job has ended
# From a kill to the next start of the dead worker's job: 2 x TTL (the
# guarantee, counted from the last renewal, which is before the kill) plus the
# time for a free worker to take it and write `running`.
MARGIN_S = 1.0


class KillStorm(RobustTest):

    def start_one(self, mock):
        return self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=8,
                                 # The storm may hit one job more than 3 times: that
                                 # is not what this test is about (test_crash.py is).
                                 EXPORT_MAX_ATTEMPTS=100)

    def test_sigkill_storm(self):
        rng = random.Random(int(os.environ.get("EXW_SEED", "20261125")))
        mock = self.start_mock(latency_ms=20)
        live = [self.start_one(mock) for _ in range(WORKERS)]
        for w in live:
            self.wait_registered(w)

        # Jobs of 8 to 20 rows (two rounds of the pool, so that a kill often
        # finds a job running), keys drawn from a shared set, some repeated
        # within a job.
        keyset = ["K-%03d" % i for i in range(120)]
        jobs = {}
        for n in range(JOBS):
            jid = "kill-%04d" % n
            jobs[jid] = lookup_job_doc(jid, [rng.choice(keyset)
                                             for _ in range(rng.randint(8, 20))])
        events = harness.Events(self.r, self.key("events"))
        self.addCleanup(events.stop)
        pipe = self.r.pipeline(transaction=False)
        for jid, job in jobs.items():
            pipe.hset(self.key("job", jid), mapping={"state": "queued", "queued_at": now_ms()})
            pipe.lpush(self.key("queue"), json.dumps(job))
        pipe.execute()
        t_begin = time.monotonic()

        # Starts seen by polling the status of jobs whose worker was killed:
        # {(jid, kill index): started_at of the first later attempt}.
        kills = []  # dicts: worker, wall_ms, mono, jid or None, attempts at the kill
        started_after = {}
        watch_lock = threading.Lock()
        watching = {}  # (jid, kill index) -> attempts at the kill
        stop_watch = threading.Event()

        def watch():
            r = redis.Redis.from_url(self.redis_url)
            try:
                while not stop_watch.is_set():
                    with watch_lock:
                        items = list(watching.items())
                    if items:
                        pipe = r.pipeline(transaction=False)
                        for (jid, _), _ in items:
                            pipe.hmget(self.key("job", jid), "attempts", "started_at", "state")
                        for ((jid, k), a0), (att, started, state) in zip(items, pipe.execute()):
                            if att is not None and int(att) > a0 and state == b"running":
                                with watch_lock:
                                    watching.pop((jid, k), None)
                                started_after[(jid, k)] = (int(att), int(started))
                    stop_watch.wait(0.02)
            finally:
                r.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def stop_watcher():
            stop_watch.set()
            watcher.join(5)
        self.addCleanup(stop_watcher)

        def unfinished():
            pipe = self.r.pipeline(transaction=False)
            for jid in jobs:
                pipe.hget(self.key("job", jid), "state")
            return sum(1 for s in pipe.execute() if s not in (b"succeeded", b"failed",
                                                              b"cancelled"))

        while time.monotonic() - t_begin < KILL_FOR_S and unfinished() > 0:
            time.sleep(KILL_EVERY_S)
            victim = rng.choice(live)
            victim.kill9()
            wall, mono = now_ms(), time.monotonic()
            live.remove(victim)
            taken = self.r.lrange(self.key("processing", victim.id), 0, -1)
            entry = {"worker": victim.id, "wall_ms": wall, "mono": mono, "jid": None}
            if taken:
                self.assertEqual(len(taken), 1, "a worker held several jobs: %r" % taken)
                jid = json.loads(taken[0])["id"]
                a0 = int(self.r.hget(self.key("job", jid), "attempts") or 0)
                entry.update(jid=jid, attempts=a0)
                with watch_lock:
                    watching[(jid, len(kills))] = a0
            kills.append(entry)
            live.append(self.start_one(mock))
        kill_phase = time.monotonic() - t_begin

        statuses = self.wait_all(list(jobs), timeout=90)
        total = time.monotonic() - t_begin
        time.sleep(0.3)
        stop_watcher()
        events.stop()

        # Every job succeeded, and its workbook is right to the last cell.
        not_ok = {j: (s.get("state"), s.get("error_code"), s.get("error"))
                  for j, s in statuses.items() if s.get("state") != "succeeded"}
        self.assertEqual(not_ok, {}, "jobs that did not succeed")
        for jid, job in jobs.items():
            self.assert_workbook(statuses[jid], job)

        # Nothing left behind.
        self.assert_queues_empty()
        self.assertEqual(self.r.llen(self.key("dead")), 0,
                         "P:dead: %r" % self.r.lrange(self.key("dead"), 0, 3))
        self.assert_no_stray_upload_keys()
        self.wait_until("dead workers leave P:workers",
                        lambda: {m.decode() for m in self.r.smembers(self.key("workers"))}
                        == {w.id for w in live}, timeout=2 * TTL_MS / 1000 + 2)
        # Each job ended once: a killed run ends nothing.
        self.assertEqual(self.stats().get("jobs_succeeded", 0), JOBS, self.stats())

        # Reruns only for jobs a killed worker held.
        held = {k["jid"] for k in kills if k["jid"]}
        dup = {j: int(s["attempts"]) for j, s in statuses.items() if int(s["attempts"]) > 1}
        self.assertEqual(set(dup) - held, set(),
                         "jobs started more than once though no worker holding them died")
        for jid, s in statuses.items():
            self.assertGreaterEqual(int(s["attempts"]), 1, "%s: %r" % (jid, s))

        # From each kill to the next start of the job the dead worker held.
        delays = []
        for k, entry in enumerate(kills):
            if entry["jid"] is None:
                continue
            got = started_after.get((entry["jid"], k))
            if got is not None:
                delays.append((got[1] - entry["wall_ms"]) / 1000.0)
                continue
            # Missed by the poll (started and killed again within 20 ms):
            # the first `running` event after the kill.
            later = [t for t, m in events.messages
                     if json.loads(m).get("id") == entry["jid"]
                     and json.loads(m).get("state") == "running" and t > entry["mono"]]
            self.assertTrue(later, "job %s of killed worker %s never started again"
                            % (entry["jid"], entry["worker"]))
            delays.append(min(later) - entry["mono"])
        bound = 2 * TTL_MS / 1000 + MARGIN_S
        print("\n  jobs %d, kills %d (%d holding a job), duplicate runs %d (%d extra starts), "
              "kill phase %.1f s, total %.1f s" % (
                  JOBS, len(kills), len(delays), len(dup), sum(a - 1 for a in dup.values()),
                  kill_phase, total))
        if delays:
            print("  kill -> job started again: max %.2f s, median %.2f s, bound %.1f s "
                  "(2 x TTL %.1f s + %.1f s)" % (max(delays), statistics.median(delays), bound,
                                                  2 * TTL_MS / 1000, MARGIN_S))
        self.assertGreater(len(kills), 0)
        self.assertGreater(len(delays), 0, "no kill hit a running job: the storm proved nothing")
        self.assertLess(max(delays), bound,
                        "a dead worker's job started again only after %.2f s" % max(delays))


class RecoveryOrder(RobustTest):

    def test_recovered_job_is_taken_next(self):
        # A dead worker's job goes back "at the end taken next": ahead of
        # the jobs that were already waiting.
        mock = self.start_mock(latency_ms=1000)
        env = dict(EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_POOL_SIZE=1)
        a = self.start_worker(mock, **env)
        x = lookup_job_doc("x", ["X-%d" % i for i in range(8)])
        self.enqueue(x)
        self.wait_state("x", ("running",), timeout=10)
        waiting = [lookup_job_doc("y%d" % i, ["Y%d-%d" % (i, k) for k in range(3)])
                   for i in range(3)]
        for job in waiting:
            self.enqueue(job)
        a.kill9()
        b = self.start_worker(mock, **env)  # takes y0 first, X is recovered meanwhile
        statuses = self.wait_all(["x"] + [j["id"] for j in waiting], timeout=40)
        for job in [x] + waiting:
            self.assert_workbook(statuses[job["id"]], job)
        order = sorted(statuses, key=lambda j: int(statuses[j]["started_at"]))
        print("\n  start order on %s: %s" % (b.id, order))
        self.assertEqual(statuses["x"]["attempts"], "2")
        # y0 may have been taken before the recovery; X must come before
        # every job still waiting when it was put back.
        self.assertIn(order, (["x", "y0", "y1", "y2"], ["y0", "x", "y1", "y2"]),
                      "the recovered job was not taken next")


if __name__ == "__main__":
    harness.main()
