#!/usr/bin/python3
"""A bounded chaos run; scripts/chaos.sh starts it (and the mock lookup service).

Runs its own redis-server (AOF, appendfsync always) and N workers, enqueues
jobs continuously as a web backend would, kills random workers with SIGKILL
(replacing each with a new one) and restarts Redis a few times. A fraction of
the workers reach Redis through a fault proxy (tests/e2e/resp_proxy.py) that
drops, at random, the reply to a take or a script after Redis ran it, and
closes that connection. Then it stops the chaos, waits for every job to end,
checks each workbook cell by cell and prints a table. Exits 1 if a job was
lost or done wrong, or something was left behind, 2 on a setup error.
"""

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402
import resp_proxy  # noqa: E402

PREFIX = "chaos"
TERMINAL = (b"succeeded", b"failed", b"cancelled")


T0 = time.monotonic()


def log(msg):
    sys.stdout.write("[%6.1f s] %s\n" % (time.monotonic() - T0, msg))
    sys.stdout.flush()


class Chaos:

    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.redis = harness.RedisServer(args.dir, appendfsync="always")
        self.proxy = None  # started once Redis has its port
        self.drop_rule = None
        self.proxied = 0
        self.workers = []  # every Worker started
        self.live = []
        self.nworkers = 0
        self.jobs = {}  # id -> document (dict)
        self.jobs_lock = threading.Lock()
        self.kills = []  # dicts
        self.restarts = []  # (down mono, up mono)
        self.watching = {}  # kill index -> (jid, attempts at the kill)
        self.picked = {}  # kill index -> seconds from the kill to the next start
        self.stop_enqueue = threading.Event()
        self.stop_watch = threading.Event()
        self.enqueue_errors = 0

    # -- keys and clients ----------------------------------------------------
    def key(self, *parts):
        return ":".join((PREFIX,) + parts)

    def client(self):
        return self.redis.client(socket_timeout=3, socket_connect_timeout=1)

    # -- workers -------------------------------------------------------------
    def start_proxy(self):
        """The fault proxy: drops the reply to a BLMOVE that carried a job or
        to a script (EVAL/EVALSHA) with probability --drop-rate, then closes
        that connection (Redis ran the command; the worker never hears)."""
        self.proxy = resp_proxy.RespProxy(self.redis.port)
        lifecycle = resp_proxy.command("BLMOVE", "EVAL", "EVALSHA")
        rng = random.Random(self.a.seed + 1)
        rate = self.a.drop_rate

        def unlucky(reply):
            return (reply.kind != "$" or reply.value is not None) and rng.random() < rate
        self.drop_rule = self.proxy.drop_reply_and_close(lifecycle, reply=unlucky, times=None)

    def start_worker(self):
        self.nworkers += 1
        wid = "chaos-w%03d" % self.nworkers
        tmp = os.path.join(self.a.dir, wid)
        os.makedirs(tmp)
        url = self.redis.url()
        if self.proxy is not None and self.rng.random() < self.a.proxied:
            url = self.proxy.url()
            wid += "-p"
            self.proxied += 1
        env = {
            "EXPORT_REDIS_URL": url,
            "EXPORT_PREFIX": PREFIX,
            "EXPORT_WORKER_ID": wid,
            "EXPORT_HEARTBEAT_TTL_MS": str(self.a.ttl_ms),
            "EXPORT_POOL_SIZE": "8",
            "EXPORT_CONCURRENCY": str(self.a.concurrency),
            "EXPORT_MAX_ATTEMPTS": str(self.a.max_attempts),
            "EXPORT_SHUTDOWN_GRACE": "2",
            "EXPORT_SERVICE_TETHER_URL": self.a.mock_url + "/contract/?sn={key}",
            "EXPORT_SERVICE_TETHER_TIMEOUT_MS": "500",
            "EXPORT_SERVICE_TETHER_RETRIES": "5",
            "EXPORT_TMPDIR": tmp,
            "EXPORT_LOG_FORMAT": "text",
        }
        w = harness.Worker(self.a.worker_bin, env, os.path.join(self.a.dir, wid + ".log"), tmp)
        self.workers.append(w)
        self.live.append(w)
        return w

    # -- the backend -----------------------------------------------------------
    def make_job(self, n):
        jid = "chaos-%05d" % n
        keys = [self.rng.choice(self.keyset) for _ in range(self.rng.randint(3, 24))]
        return harness.lookup_job_doc(jid, keys)

    def enqueue_one(self, r, job):
        """HSET + LPUSH in one MULTI, retried across outages without sending
        a job twice (the status hash tells whether the MULTI was applied)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if r.exists(self.key("job", job["id"])):
                    return True
                pipe = r.pipeline(transaction=True)
                pipe.hset(self.key("job", job["id"]),
                          mapping={"state": "queued", "queued_at": harness.now_ms()})
                pipe.lpush(self.key("queue"), json.dumps(job))
                pipe.execute()
                return True
            except redis.RedisError:
                self.enqueue_errors += 1
                time.sleep(0.2)
        return False

    def enqueuer(self):
        r = self.client()
        period = self.a.seconds * 0.9 / max(1, self.a.jobs)
        start = time.monotonic()
        try:
            for n in range(self.a.jobs):
                if self.stop_enqueue.is_set():
                    break
                wait = start + n * period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                job = self.make_job(n)
                with self.jobs_lock:
                    self.jobs[job["id"]] = job
                if not self.enqueue_one(r, job):
                    log("could not enqueue %s within 60 s" % job["id"])
        finally:
            r.close()

    # -- watching restarts of a killed worker's job ---------------------------
    def watcher(self):
        r = self.client()
        try:
            while not self.stop_watch.is_set():
                items = list(self.watching.items())
                if items:
                    try:
                        pipe = r.pipeline(transaction=False)
                        for _, (jid, _) in items:
                            pipe.hmget(self.key("job", jid), "attempts", "started_at", "state")
                        got = pipe.execute()
                    except redis.RedisError:
                        got = None
                        time.sleep(0.2)
                    for (k, (jid, a0)), row in zip(items, got or []):
                        att, started, state = row
                        if att is not None and int(att) > a0 and state != b"queued":
                            self.watching.pop(k, None)
                            self.picked[k] = (int(started) - self.kills[k]["wall_ms"]) / 1000.0
                self.stop_watch.wait(0.03)
        finally:
            r.close()

    def kill_one(self, r):
        victim = self.rng.choice(self.live)
        victim.kill9()
        wall, mono = harness.now_ms(), time.monotonic()
        self.live.remove(victim)
        entry = {"worker": victim.id, "wall_ms": wall, "mono": mono, "jid": None}
        try:
            taken = r.lrange(self.key("processing", victim.id), 0, -1)
            if taken:
                jid = json.loads(taken[0])["id"]
                a0 = int(r.hget(self.key("job", jid), "attempts") or 0)
                entry.update(jid=jid, attempts=a0)
        except (redis.RedisError, ValueError, KeyError):
            entry["unknown"] = True
        self.kills.append(entry)
        if entry["jid"]:
            self.watching[len(self.kills) - 1] = (entry["jid"], entry["attempts"])
        self.start_worker()

    # -- the run ---------------------------------------------------------------
    def run(self):
        a = self.a
        self.keyset = ["C-%03d" % i for i in range(200)]
        self.redis.start()
        if a.proxied > 0:
            self.start_proxy()
        for _ in range(a.workers):
            self.start_worker()
        log("redis on port %d (AOF), %d workers (%.0f%% through the fault proxy, reply drop "
            "rate %.3f), mock %s; chaos for %d s, %d jobs"
            % (self.redis.port, a.workers, 100 * a.proxied, a.drop_rate, a.mock_url,
               a.seconds, a.jobs))
        threads = [threading.Thread(target=self.enqueuer, daemon=True),
                   threading.Thread(target=self.watcher, daemon=True)]
        for t in threads:
            t.start()
        r = self.client()
        begin = time.monotonic()
        end = begin + a.seconds
        restart_at = sorted(begin + a.seconds * (i + 1) / (a.restarts + 1) +
                            self.rng.uniform(-3, 3) for i in range(a.restarts))
        next_kill = time.monotonic() + self.rng.uniform(1, 3)
        next_report = time.monotonic() + 15
        guard = 2 * a.ttl_ms / 1000.0 + 1.5  # no kill this close before a restart
        while time.monotonic() < end:
            now = time.monotonic()
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                down = time.monotonic()
                self.redis.shutdown()
                time.sleep(self.rng.uniform(1.0, 3.0))
                self.redis.start()
                self.restarts.append((down, time.monotonic()))
                log("redis restarted (down %.1f s)" % (time.monotonic() - down))
                try:
                    r.ping()  # replaces the connection the restart broke
                except redis.RedisError:
                    pass
                next_kill = max(next_kill, time.monotonic() + 1)
                continue
            if now >= next_kill and not (restart_at and restart_at[0] - now < guard):
                self.kill_one(r)
                next_kill = now + self.rng.uniform(a.kill_min, a.kill_max)
            if now >= next_report:
                next_report = now + 15
                try:
                    log("%d jobs enqueued, %d queued, %d succeeded, %d kills, %d restarts"
                        % (len(self.jobs), r.llen(self.key("queue")),
                           int(r.hget(self.key("stats"), "jobs_succeeded") or 0),
                           len(self.kills), len(self.restarts)))
                except redis.RedisError:
                    pass
            time.sleep(0.05)
        self.stop_enqueue.set()
        threads[0].join(70)
        log("chaos over: %d jobs enqueued, %d workers killed, %d Redis restarts; draining"
            % (len(self.jobs), len(self.kills), len(self.restarts)))
        # Drain: wait until every job has ended, bounded.
        drain_end = time.monotonic() + a.drain
        pending = list(self.jobs)
        while pending and time.monotonic() < drain_end:
            try:
                pipe = r.pipeline(transaction=False)
                for jid in pending:
                    pipe.hget(self.key("job", jid), "state")
                pending = [j for j, s in zip(pending, pipe.execute()) if s not in TERMINAL]
            except redis.RedisError:
                pass
            time.sleep(0.25)
        time.sleep(0.5)
        self.stop_watch.set()
        threads[1].join(5)
        r.close()
        return self.verify()

    # -- the verdict -------------------------------------------------------------
    def verify(self):
        a = self.a
        r = self.client()
        lost, wrong, dead_ok, succeeded, reruns, extra_starts = [], [], [], 0, 0, 0
        processing = {}
        for k in r.scan_iter(match=self.key("processing", "*"), count=1000):
            for d in r.lrange(k, 0, -1):
                processing[json.loads(d)["id"]] = k.decode()
        queued = set()
        for d in r.lrange(self.key("queue"), 0, -1):
            queued.add(json.loads(d)["id"])
        dead_entries = [json.loads(e) for e in r.lrange(self.key("dead"), 0, -1)]
        dead_ids = {json.loads(e["job"])["id"] for e in dead_entries}
        for jid, job in sorted(self.jobs.items()):
            raw = r.hgetall(self.key("job", jid))
            st = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
            state = st.get("state")
            attempts = int(st.get("attempts", "0") or 0)
            if state == "succeeded":
                succeeded += 1
                if attempts > 1:
                    reruns += 1
                    extra_starts += attempts - 1
                data = r.get(st.get("result_key", self.key("result", jid)))
                problems = (["no result"] if data is None
                            else harness.workbook_problems(data, job, st))
                if problems:
                    wrong.append((jid, "; ".join(problems[:3])))
            elif state == "failed" and st.get("error_code") == "too_many_attempts" \
                    and jid in dead_ids:
                dead_ok.append(jid)
            elif state in ("failed", "cancelled"):
                wrong.append((jid, "%s %s: %s" % (state, st.get("error_code"), st.get("error"))))
            else:
                where = ("in P:queue" if jid in queued else
                         "in %s" % processing[jid] if jid in processing else "nowhere")
                lost.append((jid, "state %r, %s" % (state, where)))
        leftovers = []
        if r.llen(self.key("queue")):
            leftovers.append("P:queue holds %d" % r.llen(self.key("queue")))
        if processing:
            leftovers.append("processing lists hold %d" % len(processing))
        # Every ending that is not a success, a put-back and a recovery delete
        # the partial upload (P:upload:<worker>:<id>, or the older
        # P:result:<id>:upload:<worker>) and its entry in P:uploads:<worker>.
        for k, ttl in sorted(harness.upload_keys(r, PREFIX).items()):
            leftovers.append("upload key%s: %s" % (" without TTL" if ttl < 0 else "", k))
        for k, members in sorted(harness.upload_sets(r, PREFIX).items()):
            leftovers.append("upload set %s: %s" % (k, members))
        r.close()

        usable = []  # pick-up times of kills not overlapping a Redis outage
        overlapped = 0
        bound = 2 * a.ttl_ms / 1000.0
        for k, entry in enumerate(self.kills):
            if k not in self.picked:
                continue
            t = self.picked[k]
            if any(down < entry["mono"] + t + 0.5 and up > entry["mono"] - 0.5
                   for down, up in self.restarts):
                overlapped += 1
                continue
            usable.append(t)
        held = sum(1 for e in self.kills if e["jid"])
        never = [self.kills[k]["jid"] for k in self.watching]

        rows = [
            ("jobs enqueued", len(self.jobs)),
            ("jobs succeeded (workbooks checked cell by cell)", succeeded),
            ("workers killed (SIGKILL)", "%d (%d holding a job)" % (len(self.kills), held)),
            ("Redis restarts (SHUTDOWN, AOF)", len(self.restarts)),
            ("workers through the fault proxy", self.proxied),
            ("replies dropped by the proxy (connection closed)",
             len(self.drop_rule.hits) if self.drop_rule else 0),
            ("jobs lost", len(lost)),
            ("jobs wrong (failed, or a wrong workbook)", len(wrong)),
            ("duplicate runs (jobs started more than once)",
             "%d jobs, %d extra starts" % (reruns, extra_starts)),
            ("jobs in P:dead", "%d (%d too_many_attempts)" % (len(dead_entries), len(dead_ok))),
            ("dead worker's job picked up again: max",
             "%.2f s" % max(usable) if usable else "-"),
            ("dead worker's job picked up again: median",
             "%.2f s" % statistics.median(usable) if usable else "-"),
            ("  bound: 2 x heartbeat TTL", "%.2f s (%d kills measured, %d overlapping a Redis "
             "outage left out)" % (bound, len(usable), overlapped)),
            ("leftovers (queue, processing, upload keys and sets)", len(leftovers)),
        ]
        width = max(len(k) for k, _ in rows)
        print()
        print("-" * (width + 40))
        for k, v in rows:
            print("%-*s  %s" % (width, k, v))
        print("-" * (width + 40))
        for jid, why in lost[:10]:
            print("LOST  %s: %s" % (jid, why))
        for jid, why in wrong[:10]:
            print("WRONG %s: %s" % (jid, why))
        for what in leftovers[:10]:
            print("LEFT  %s" % what)
        for jid in never[:10]:
            print("NOTE  job %s of a killed worker was not seen starting again" % jid)
        slow = [t for t in usable if t >= bound]
        if slow:
            print("SLOW  %d pick-up(s) at or over 2 x TTL: %s"
                  % (len(slow), ", ".join("%.2f s" % t for t in slow)))
        failed = bool(lost or wrong or leftovers or slow)
        print("RESULT: %s" % ("FAILED" if failed else "ok"))
        return 1 if failed else 0

    def stop(self):
        bad = []
        for w in self.workers:
            if w.running() and w.expect_clean_exit:
                rc, _ = w.stop(10)
                if rc != 0:
                    bad.append("%s exited %s after SIGTERM" % (w.id, rc))
            else:
                w.stop(1)
        if self.proxy is not None:
            self.proxy.stop()
        self.redis.stop()
        for b in bad:
            print("WORKER %s" % b)
        return bad


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=120, help="length of the chaos (default 120)")
    p.add_argument("--workers", type=int, default=4, help="workers alive at a time (default 4)")
    p.add_argument("--jobs", type=int, default=1000,
                   help="jobs enqueued, spread over the run (default 1000)")
    p.add_argument("--restarts", type=int, default=3, help="Redis restarts (default 3)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="EXPORT_CONCURRENCY of each worker (default 1)")
    p.add_argument("--ttl-ms", type=int, default=2000, help="EXPORT_HEARTBEAT_TTL_MS (2000)")
    p.add_argument("--max-attempts", type=int, default=3, help="EXPORT_MAX_ATTEMPTS (3)")
    p.add_argument("--kill-min", type=float, default=1.5, help="seconds between kills, min")
    p.add_argument("--kill-max", type=float, default=4.0, help="seconds between kills, max")
    p.add_argument("--drain", type=int, default=120, help="seconds to wait for the last jobs")
    p.add_argument("--proxied", type=float, default=0.25,
                   help="share of workers reaching Redis through the fault proxy (0.25)")
    p.add_argument("--drop-rate", type=float, default=0.03,
                   help="chance the proxy drops the reply to a take or a script (0.03)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mock-url", required=True)
    p.add_argument("--worker-bin", required=True)
    p.add_argument("--dir", required=True)
    args = p.parse_args()
    if args.seconds < 10 or args.workers < 1 or args.jobs < 1:
        p.error("--seconds at least 10, --workers and --jobs at least 1")
    if not 0 <= args.proxied <= 1 or not 0 <= args.drop_rate <= 1:
        p.error("--proxied and --drop-rate are between 0 and 1")
    chaos = Chaos(args)
    rc = 2
    try:
        rc = chaos.run()
    finally:
        if chaos.stop() and rc == 0:
            rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
