"""Poison documents under an address-space cap (PROTOCOL.md section 4:
"Bad input never stops a worker"; a start is counted before the document is
parsed, so a document that kills its worker ends in P:dead after
EXPORT_MAX_ATTEMPTS starts).

The worker runs under `prlimit --as=<cap>`, the cap measured first: the
address space a worker with EXPORT_POOL_SIZE=4 reaches on ordinary jobs,
plus 512 MiB (room for about twice the largest document below on top of the
working set, as the protocol promises, but not for a parse tree of millions
of values). A small restart loop starts a dead worker again with the same
environment, as a container platform would. Documents, one at a time:
  (a) ~60 MB: millions of tiny elements in an unknown top-level member, a
      usable id;
  (b) 1.5 million rows of tiny objects (~30 MB);
  (c) ~30 MB array: no usable id;
  (d) just over EXPORT_MAX_JOB_BYTES (set to 8 MiB).
Each ends, within bounded time and after at most EXPORT_MAX_ATTEMPTS starts,
`failed` under its id (too_large / invalid_job, or too_many_attempts with its
P:dead entry) or in P:dead; (a) and (b) are valid documents and may also
succeed (every row written) when the worker runs them within the cap. The
P:dead entry of a document over 1 MiB is capped: "truncated": true,
"job_bytes", "job_sha256" of the whole document, "job" a prefix of it of at
most 1 MiB. A good job succeeds after each.

test_document_too_big_for_the_cap goes further: a 40 MB document under a
cap of an idle worker's address space + 48 MiB, less than the "twice its
size" the protocol promises room for (a misconfigured container): the worker
cannot hold it, and the job must still end in bounded time (failed, or
P:dead after EXPORT_MAX_ATTEMPTS starts), not be retried for ever uncounted.

Address-space caps do not work under AddressSanitizer or ThreadSanitizer:
when EXW_SANITIZE is set (tests/e2e/CMakeLists.txt passes the build's
EXW_SANITIZE) the workers run without prlimit and the same outcomes are
asserted."""

import json
import os
import re
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc, sha256  # noqa: E402

TTL_MS = 2000
MAX_ATTEMPTS = 3
MAX_JOB_BYTES_D = 8 << 20
DEAD_JOB_CAP = 1 << 20
HEADROOM = 512 << 20
SANITIZE = os.environ.get("EXW_SANITIZE", "")
SLOW = 3 if SANITIZE else 1


def vm_peak(pid):
    """VmPeak of @pid in bytes, 0 when unreadable."""
    return harness.proc_status_bytes(pid, "VmPeak")


class Supervisor:
    """One worker at a time, started again with the same environment when
    it dies (a container platform's restart policy), under `prlimit --as`
    when @cap is set. Gives up after @max_deaths deaths."""

    def __init__(self, test, env, cap, max_deaths):
        self.test = test
        self.env = dict(env)
        self.cap = cap
        self.max_deaths = max_deaths
        self.deaths = []  # (monotonic seconds, exit status)
        self.workers = []
        self.gave_up = False
        self._stop = threading.Event()
        self.current = self._spawn()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _spawn(self):
        t = self.test
        log = os.path.join(t.tmp, "%s-%d.log" % (self.env["EXPORT_WORKER_ID"],
                                                 len(self.workers) + 1))
        if self.cap:
            prlimit = shutil.which("prlimit", path="/usr/bin:/bin") or "prlimit"
            w = harness.Worker(prlimit, self.env, log, self.env["EXPORT_TMPDIR"],
                               ["--as=%d" % self.cap, t.worker_bin])
        else:
            w = harness.Worker(t.worker_bin, self.env, log, self.env["EXPORT_TMPDIR"])
        t.workers.append(w)
        self.workers.append(w)
        return w

    def _run(self):
        while not self._stop.is_set():
            w = self.current
            if w.proc.poll() is not None and not self._stop.is_set():
                w.expect_clean_exit = False
                self.deaths.append((time.monotonic(), w.proc.returncode))
                if len(self.deaths) >= self.max_deaths:
                    self.gave_up = True
                    return
                self._stop.wait(0.2)
                if not self._stop.is_set():
                    self.current = self._spawn()
            self._stop.wait(0.05)

    def stop(self):
        """Stops the loop and the live worker: its exit status after SIGTERM."""
        self._stop.set()
        self._thread.join(5)
        w = self.current
        if w.proc.poll() is not None:
            w.expect_clean_exit = False
            return None
        rc, _ = w.stop()
        return rc

    def warnings(self, n=3):
        """The last @n warning or error messages of its workers."""
        out = []
        for w in self.workers:
            for line in w.log().splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("lvl") in ("warn", "error"):
                    out.append(obj.get("msg", "")[:200])
        return out[-n:]

    def log_lines(self, jid):
        """Log lines (JSON objects) of every worker it ran about job @jid."""
        out = []
        for w in self.workers:
            for line in w.log().splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("job") == jid:
                    out.append(obj)
        return out


class Poison(RobustTest):

    def env(self, **extra):
        tmpdir = os.path.join(self.tmp, "shared-%d" % (self._nworkers + 1))
        os.makedirs(tmpdir, exist_ok=True)
        return self.worker_env(self.mock, EXPORT_POOL_SIZE=4, EXPORT_HEARTBEAT_TTL_MS=TTL_MS,
                               EXPORT_MAX_ATTEMPTS=MAX_ATTEMPTS, EXPORT_TMPDIR=tmpdir, **extra)

    def measure_cap(self):
        """The address space a worker reaches on ordinary jobs, + HEADROOM."""
        w = self.start_worker(self.mock, EXPORT_POOL_SIZE=4)
        self.wait_registered(w)
        self.run_job(lookup_job_doc("warm-1", ["W-%d" % i for i in range(40)]))
        rows = [{"a": "r%06d" % i, "n": i} for i in range(20000)]
        self.run_job({"id": "warm-2", "columns": [{"header": "A", "field": "a"},
                                                  {"header": "N", "field": "n",
                                                   "type": "integer"}], "rows": rows})
        peak = vm_peak(w.pid)
        rc, _ = w.stop()
        self.assertEqual(rc, 0)
        self.assertGreater(peak, 0, "cannot read VmPeak")
        return peak + HEADROOM

    def dead_entry(self, doc):
        """The P:dead entry of @doc (bytes): matched by job_sha256, or by the
        whole document when it was stored whole."""
        want = sha256(doc)
        for raw in self.r.lrange(self.key("dead"), 0, -1):
            if len(raw) > len(doc) * 2 + 4096:
                continue
            try:
                e = json.loads(raw)
            except ValueError:
                continue
            if e.get("job_sha256") == want or e.get("job") == doc.decode("utf-8", "replace"):
                return e
        return None

    def run_poison(self, name, doc, jid, env_extra=None, cap=None, limit=90, good_job=None):
        """Pushes @doc to a supervised worker capped at @cap (default
        self.cap); waits up to @limit seconds for its end. Returns a dict of
        what happened."""
        sup = Supervisor(self, self.env(**(env_extra or {})), cap or self.cap,
                         max_deaths=MAX_ATTEMPTS + 3)
        w = sup.current
        self.wait_registered(w, timeout=10)
        self.assertTrue(w.running(), "the worker did not start under the cap %s: %s"
                        % (sup.cap, w.log()[-2000:]))
        if jid is not None:
            self.r.hset(self.key("job", jid), mapping={"state": "queued",
                                                       "queued_at": harness.now_ms()})
        t0 = time.monotonic()
        self.r.lpush(self.key("queue"), doc)
        limit *= SLOW
        st, entry, ended = {}, None, False
        ndead = self.r.llen(self.key("dead"))
        while time.monotonic() - t0 < limit and not sup.gave_up:
            if jid is not None:
                st = self.status(jid)
                ended = st.get("state") in harness.TERMINAL
            if self.r.llen(self.key("dead")) != ndead:
                entry = self.dead_entry(doc)
            if ended or entry is not None:
                ended = True
                break
            time.sleep(0.25)
        took = time.monotonic() - t0
        if jid is not None and ended:
            time.sleep(0.5)  # a dead letter and the status are written together
            st = self.status(jid)
            entry = self.dead_entry(doc)
        good = None
        if ended:
            try:
                if good_job is None:
                    good_job = lookup_job_doc("good-" + name, ["G-%s-%d" % (name, i)
                                                               for i in range(10)])
                self.enqueue(good_job)
                good = self.wait_state(good_job["id"], timeout=30 * SLOW)
            except AssertionError as e:
                good = {"state": "none: %s" % e}
        deaths = [rc for t, rc in sup.deaths if t >= t0]
        lines = sup.log_lines(jid) if jid is not None else []
        starts = [o for o in lines if re.search(r"(?i)job started", o.get("msg", ""))]
        warnings = sup.warnings()
        rc = sup.stop()
        # Whatever is left of a doc that never ended must not block the next.
        self.r.delete(self.key("queue"))
        for k in self.r.scan_iter(match=self.key("processing", "*")):
            self.r.delete(k)
        out = {"name": name, "ended": ended, "took": took, "status": st, "entry": entry,
               "deaths": deaths, "starts": len(starts), "good": good, "exit": rc,
               "gave_up": sup.gave_up, "warnings": warnings}
        print("\n  (%s) %d bytes: %s in %.1f s; worker deaths %s, 'job started' lines %d; "
              "status %s; P:dead entry %s; good job after: %s"
              % (name, len(doc), "ended" if ended else "NOT ended", took, deaths, len(starts),
                 {k: st.get(k) for k in ("state", "error_code", "attempts") if k in st},
                 None if entry is None else {k: entry.get(k) for k in
                                             ("error", "truncated", "job_bytes")},
                 None if good is None else good.get("state")))
        return out

    def assert_bounded(self, res):
        self.assertFalse(res["gave_up"], "the worker died %d times on it: a crash loop"
                         % len(res["deaths"]))
        self.assertTrue(res["ended"], "not ended within %.0f s; the worker's last warnings: %s"
                        % (res["took"], res["warnings"]))
        self.assertLessEqual(len(res["deaths"]), MAX_ATTEMPTS, res["deaths"])
        self.assertLessEqual(res["starts"], MAX_ATTEMPTS, "'job started' lines")
        attempts = res["status"].get("attempts")
        if attempts is not None:
            self.assertLessEqual(int(attempts), MAX_ATTEMPTS, res["status"])
        self.assertEqual(res["exit"], 0, "the last worker's exit status after SIGTERM")
        good = res["good"] or {}
        self.assertEqual(good.get("state"), "succeeded", "the good job after it: %r" % good)

    def assert_capped_entry(self, entry, doc):
        self.assertIsNotNone(entry, "no P:dead entry")
        self.assertIs(entry.get("truncated"), True, {k: v for k, v in entry.items()
                                                     if k != "job"})
        self.assertEqual(entry.get("job_bytes"), len(doc))
        self.assertEqual(entry.get("job_sha256"), sha256(doc))
        kept = entry.get("job", "").encode("utf-8")
        self.assertLessEqual(len(kept), DEAD_JOB_CAP, "the entry keeps %d bytes" % len(kept))
        self.assertGreater(len(kept), 0)
        self.assertTrue(doc.startswith(kept), "the entry's job is not a prefix of the document")
        self.assertTrue(entry.get("error"), entry.get("error"))
        self.assertIsInstance(entry.get("failed_at"), (int, float))

    def assert_failed_under_id(self, res, doc, codes, may_succeed_rows=None):
        st = res["status"]
        if res["entry"] is not None and st.get("state") not in harness.TERMINAL:
            self.fail("the document went to P:dead (%s) but its status stays %r: a document "
                      "with a usable id ends failed under it"
                      % (res["entry"].get("error"), st.get("state")))
        if may_succeed_rows is not None and st.get("state") == "succeeded":
            # A valid document run in bounded memory under the cap: the best end.
            self.assertEqual(st.get("rows_written"), str(may_succeed_rows), st)
            data = self.result_bytes(st)
            self.assertEqual(st.get("result_sha256"), sha256(data))
            return
        self.assertEqual(st.get("state"), "failed", st)
        self.assertIn(st.get("error_code"), codes + ("too_many_attempts",), st)
        self.assertTrue(st.get("error"), st)
        self.assertEqual(self.r.exists(self.key("result", res["name"])), 0)
        if st.get("error_code") == "too_many_attempts" or res["entry"] is not None:
            self.assert_capped_entry(res["entry"], doc)

    def test_poison_documents(self):
        self.mock = self.start_mock(latency_ms=5)
        self.cap = None if SANITIZE else self.measure_cap()
        print("\n  address-space cap: %s" % ("none (EXW_SANITIZE=%s)" % SANITIZE if SANITIZE
                                             else "%d MiB" % (self.cap >> 20)))
        head = b'{"id":"%s","columns":[{"header":"A","field":"a"}],"rows":[{"a":"x"}],'
        # (a) ~60 MB of tiny elements in an unknown member.
        doc_a = head % b"poison-a" + b'"junk":[' + b"0," * 30000000 + b"0]}"
        # (b) 1.5 million rows of tiny objects.
        nrows = 1500000
        doc_b = (b'{"id":"poison-b","columns":[{"header":"A","field":"a"}],"rows":['
                 + b",".join([b'{"a":0,"b":0,"c":0}'] * nrows) + b"]}")
        # (c) ~30 MB array: no usable id.
        doc_c = b"[" + b"0," * 15000000 + b"0]"
        # (d) one byte over EXPORT_MAX_JOB_BYTES.
        stem = head % b"poison-d" + b'"pad":"'
        doc_d = stem + b"x" * (MAX_JOB_BYTES_D + 1 - len(stem) - 2) + b'"}'
        self.assertEqual(len(doc_d), MAX_JOB_BYTES_D + 1)
        json.loads(doc_d)

        with self.subTest("(a) 60 MB of tiny elements in an unknown member"):
            res = self.run_poison("poison-a", doc_a, "poison-a")
            self.assert_bounded(res)
            self.assert_failed_under_id(res, doc_a, ("too_large", "invalid_job"),
                                        may_succeed_rows=1)
        with self.subTest("(b) 1.5 million rows of tiny objects"):
            res = self.run_poison("poison-b", doc_b, "poison-b")
            self.assert_bounded(res)
            self.assert_failed_under_id(res, doc_b, ("too_large", "invalid_job"),
                                        may_succeed_rows=nrows)
        with self.subTest("(c) 30 MB array without an id"):
            res = self.run_poison("poison-c", doc_c, None)
            self.assert_bounded(res)
            self.assert_capped_entry(res["entry"], doc_c)
        with self.subTest("(d) one byte over EXPORT_MAX_JOB_BYTES"):
            res = self.run_poison("poison-d", doc_d, "poison-d",
                                  {"EXPORT_MAX_JOB_BYTES": MAX_JOB_BYTES_D})
            self.assert_bounded(res)
            self.assertEqual(res["deaths"], [], "a worker died on a document over the limit")
            st = res["status"]
            self.assertEqual(st.get("state"), "failed", st)
            self.assertEqual(st.get("error_code"), "too_large", st)
            self.assertRegex(st.get("error", ""), r"EXPORT_MAX_JOB_BYTES|%d" % MAX_JOB_BYTES_D)
            self.assertIn(st.get("attempts", "0"), ("0", "1"), st)

    def test_document_too_big_for_the_cap(self):
        self.too_big_for_the_cap("e", {})

    def test_document_too_big_for_the_cap_with_job_threads(self):
        """The same with three job threads: the document is ended by its
        head only once the other threads are idle."""
        self.too_big_for_the_cap("f", {"EXPORT_CONCURRENCY": "3"})

    def too_big_for_the_cap(self, tag, extra):
        self.mock = self.start_mock(latency_ms=5)
        self.cap = None
        if not SANITIZE:
            env = self.env(**extra)
            w = harness.Worker(self.worker_bin, env, os.path.join(self.tmp, "idle.log"),
                               env["EXPORT_TMPDIR"])
            self.workers.append(w)
            self.wait_registered(w)
            time.sleep(0.5)
            self.cap = vm_peak(w.pid) + (48 << 20)
            rc, _ = w.stop()
            self.assertEqual(rc, 0)
        print("\n  address-space cap: %s" % ("none (EXW_SANITIZE=%s)" % SANITIZE if SANITIZE
                                             else "%d MiB" % (self.cap >> 20)))
        jid = "poison-" + tag
        doc = (b'{"id":"' + jid.encode() + b'","columns":[{"header":"A","field":"a"}],'
               b'"rows":[{"a":"x"}],"pad":"' + b"x" * 40000000 + b'"}')
        good = {"id": "good-" + tag, "columns": [{"header": "A", "field": "a"}],
                "rows": [{"a": "x"}]}
        res = self.run_poison(jid, doc, jid, env_extra=extra, limit=60, good_job=good)
        self.assert_bounded(res)
        self.assert_failed_under_id(res, doc, ("too_large", "invalid_job", "internal"),
                                    may_succeed_rows=1)

    def test_dead_entry_cut_at_a_utf8_boundary(self):
        """A 1.5 MB document without an id, an invalid byte near its start
        and a 3-byte character across the 1 MiB mark: the entry keeps the
        document up to the last whole character before 1 MiB, the invalid
        byte replaced by U+FFFD, with job_bytes and job_sha256 of the whole."""
        self.start_worker()
        head = b'["\xff'
        doc = (head + b"a" * (DEAD_JOB_CAP - 1 - len(head)) + "\u20ac".encode()
               + b"b" * 500000 + b'"]')
        self.assertEqual(doc[DEAD_JOB_CAP - 1:DEAD_JOB_CAP + 2], "\u20ac".encode())
        self.r.lpush(self.key("queue"), doc)
        entry = self.wait_until("the P:dead entry", lambda: self.dead_entry(doc), timeout=20)
        self.assertIs(entry.get("truncated"), True, {k: v for k, v in entry.items()
                                                     if k != "job"})
        self.assertEqual(entry.get("job_bytes"), len(doc))
        self.assertEqual(entry.get("job_sha256"), sha256(doc))
        job = entry.get("job", "")
        full = doc.decode("utf-8", "replace")
        self.assertTrue(job.startswith('["\ufffd'), "the invalid byte is not U+FFFD: %r"
                        % job[:8])
        self.assertTrue(full.startswith(job), "the entry's job is not a prefix of the document")
        self.assertNotIn("\u20ac", job, "kept past 1 MiB")
        kept = len(job.encode("utf-8"))
        # The cut is at the last whole character within 1 MiB of the
        # document (U+FFFD takes 2 bytes more than the byte it replaces).
        self.assertTrue(DEAD_JOB_CAP - 8 <= kept <= DEAD_JOB_CAP + 2,
                        "kept %d bytes of UTF-8" % kept)
        self.assertTrue(entry.get("error"))
        self.assertEqual(self.stats().get("jobs_dead"), 1, self.stats())


if __name__ == "__main__":
    harness.main()
