"""The bad-job corpus (tests/corpus/bad/) end to end, on one worker.

Every document is enqueued at once (with a status hash when it has an id), and
each must end as tests/corpus/bad/expected.json says: `failed` with its
error_code and words in `error`, or a P:dead entry holding the original
document with the words in its error. Then: nothing is left in the processing
list, every failed status has its TTL, P:stats counts match, and the same worker
process is still alive and completes a good job correctly.

Other tests here: rows_key lists with bad elements, limits met exactly (the
good side of each corpus limit), duplicate members, and rows_key naming the
worker's own keys.
"""

import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402
import corpus_util  # noqa: E402


def good_job(jid):
    return {
        "id": jid,
        "sheet": "Good",
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [
            {"header": "SN", "field": "sn"},
            {"header": "Amount", "field": "amount", "type": "number"},
            {"header": "Units", "field": "units", "type": "integer"},
            {"header": "Ok", "field": "ok", "type": "boolean"},
            {"header": "Signed", "field": "signed", "type": "date"},
            {"header": "At", "field": "at", "type": "datetime"},
            {"header": "Name", "lookup": "/name"},
            {"header": "Score", "lookup": "/score", "type": "integer"},
        ],
        "rows": [{"sn": "G-%d" % i, "amount": i * 1.25, "units": i, "ok": i % 2 == 0,
                  "signed": "2026-01-%02d" % (i + 1), "at": "2026-01-01T10:00:0%d+01:00" % i}
                 for i in range(6)] + [{"sn": "=1+1", "amount": None}],
    }


class Corpus(E2ETest):

    def check_good_job(self, jid):
        job = good_job(jid)
        st = self.run_job(job, timeout=60)
        data = self.result_bytes(st)
        self.assertEqual(harness.sha256(data), st.get("result_sha256"))
        wb = self.workbook(data)
        self.assertEqual(wb.sheetnames, ["Good"])
        ws = wb["Good"]
        self.assertEqual([c.value for c in ws[1]], [c["header"] for c in job["columns"]])
        self.assert_rows(ws, job["columns"], job["rows"], lookup_key="sn")
        # A text cell that looks like a formula stays text.
        cells = harness.raw_cells(data)
        self.assertFalse(any(has_f for _, has_f, _ in cells.values()), "a formula was written")

    def test_corpus_on_one_worker(self):
        t_start = time.monotonic()
        mock = self.start_mock()
        worker = self.start_worker(mock, **corpus_util.CORPUS_WORKER_ENV)
        self.wait_registered(worker)
        pid = worker.pid
        cases = corpus_util.load_corpus(self.prefix)
        self.assertGreaterEqual(len(cases), 60)

        # rows_key cases, built here: each list holds good rows and one bad element.
        rk_cases = []
        for slug, element, words in [
                ("not-json", b"this is not json", ["rows[2]", "not valid JSON"]),
                ("array", b'["r2", 2]', ["rows[2]", "expected an object", "array"]),
                ("wrong-type", b'{"a": "r2", "n": "12"}', ["rows[2].n", "expected a number"]),
                ("invalid-utf8", b'{"a": "r\xff2"}', ["rows[2]", "UTF-8"]),
                ("nul-escape", b'{"a": "r\\u00002"}', ["rows[2]", "NUL"]),
                ("too-deep", b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", ["rows[2]", "32"])]:
            jid = "rk-bad-" + slug
            rows_key = self.key("rows", jid)
            self.r.rpush(rows_key, b'{"a": "r0", "n": 1}', b'{"a": "r1", "n": 2.5}', element,
                         b'{"a": "r3", "n": 3}')
            doc = json.dumps({"id": jid, "rows_key": rows_key,
                              "columns": [{"header": "A", "field": "a"},
                                          {"header": "N", "field": "n", "type": "number"}]})
            rk_cases.append(corpus_util.CorpusCase(
                "(rows_key %s)" % slug, doc.encode(),
                {"outcome": "failed", "id": jid, "error_code": "invalid_job",
                 "error_contains": words}))
            rk_cases[-1].rows_key = rows_key
        all_cases = cases + rk_cases
        failed_cases = [c for c in all_cases if c.outcome == "failed"]
        dead_cases = [c for c in all_cases if c.outcome == "dead"]
        ids = [c.id for c in failed_cases]
        self.assertEqual(len(ids), len(set(ids)), "ids of the corpus are not unique")

        t_enqueue = harness.now_ms()
        for c in all_cases:
            if c.outcome == "failed":
                self.r.hset(self.key("job", c.id), mapping={"state": "queued",
                                                            "queued_at": harness.now_ms()})
            self.r.lpush(self.key("queue"), c.data)

        def drained():
            """Nothing queued or being run, and every failed case's status ended (or
            the queue and processing list stayed empty for 2 s)."""
            pipe = self.r.pipeline(transaction=False)
            pipe.llen(self.key("queue"))
            pipe.llen(self.key("processing", worker.id))
            for c in failed_cases:
                pipe.hget(self.key("job", c.id), "state")
            res = pipe.execute()
            if res[0] or res[1]:
                drained.idle_since = None
                return False
            states = [s.decode() if s else None for s in res[2:]]
            if all(s in harness.TERMINAL for s in states):
                return True
            drained.idle_since = drained.idle_since or time.monotonic()
            return time.monotonic() - drained.idle_since > 2
        drained.idle_since = None
        ended = corpus_util.wait_for(drained, timeout=180, interval=0.2)
        took = time.monotonic() - t_start
        self.assertTrue(worker.running(), "the worker died on the corpus")
        self.assertTrue(ended, "the corpus did not end within 180 s (queue %d, dead %d of %d)"
                        % (self.r.llen(self.key("queue")), self.r.llen(self.key("dead")),
                           len(dead_cases)))

        # -- failed documents --------------------------------------------------
        table = collections.Counter()
        mismatches = []
        for c in failed_cases:
            with self.subTest(c.name):
                st = self.status(c.id)
                got = (st.get("state"), st.get("error_code"))
                table["%s/%s" % got] += 1
                if got != ("failed", c.error_code):
                    mismatches.append("%s: want failed/%s, got %s/%s: %s" % (
                        c.name, c.error_code, got[0], got[1], st.get("error", "")[:200]))
                self.assertEqual(got, ("failed", c.error_code),
                                 "%s: status %r" % (c.name, st))
                missing = corpus_util.contains_all(st.get("error", ""), c.error_contains)
                if missing:
                    mismatches.append("%s: error %r lacks %r" % (c.name, st.get("error"),
                                                                 missing))
                self.assertEqual(missing, [], "%s: error %r" % (c.name, st.get("error")))
                self.assertRegex(st.get("finished_at", ""), r"^\d{13}$")
                self.assertNotIn("result_key", st)
                self.assertEqual(self.r.exists(self.key("result", c.id)), 0)
                ttl = self.r.ttl(self.key("job", c.id))
                self.assertTrue(0 < ttl <= 86400, "%s: status TTL %d" % (c.name, ttl))
                self.assertIsNone(self.r.lpos(self.key("processing", worker.id), c.data),
                                  "%s: still in the processing list" % c.name)
                if getattr(c, "rows_key", None):
                    self.assertEqual(self.r.exists(c.rows_key), 0,
                                     "%s: rows_key list not deleted" % c.name)

        # -- dead letters --------------------------------------------------------
        entries = [json.loads(e) for e in self.r.lrange(self.key("dead"), 0, -1)]
        by_job = collections.defaultdict(list)
        for e in entries:
            by_job[e.get("job")].append(e)
        for c in dead_cases:
            with self.subTest(c.name):
                table["dead"] += 1
                found = [e for t in corpus_util.dead_letter_texts(c.data)
                         for e in by_job.get(t, [])]
                if not found:
                    mismatches.append("%s: no P:dead entry holds the document" % c.name)
                self.assertTrue(found, "%s: no P:dead entry holds the document %r" % (
                    c.name, c.data[:120]))
                e = found[0]
                self.assertIsInstance(e.get("failed_at"), (int, float))
                self.assertNotIsInstance(e.get("failed_at"), bool)
                self.assertTrue(t_enqueue - 1000 <= e["failed_at"] <= harness.now_ms() + 1000, e)
                missing = corpus_util.contains_all(e.get("error", ""), c.error_contains)
                if missing:
                    mismatches.append("%s: dead error %r lacks %r" % (c.name, e.get("error"),
                                                                      missing))
                self.assertEqual(missing, [], "%s: dead error %r" % (c.name, e.get("error")))

        # -- the table, before the checks that stop the test ------------------------
        files = len(cases)
        by_outcome = collections.Counter(c.outcome for c in cases)
        print("\ncorpus: %d files tried (%d failed, %d dead) + %d rows_key lists, "
              "on one worker, in %.1f s" % (files, by_outcome["failed"], by_outcome["dead"],
                                            len(rk_cases), took))
        print("  %-28s %5s" % ("outcome/error_code", "count"))
        for k, v in sorted(table.items()):
            print("  %-28s %5d" % (k, v))
        if mismatches:
            print("mismatches:")
            for m in mismatches:
                print("  " + m)
        sys.stdout.flush()

        expected_texts = set()
        for c in dead_cases:
            expected_texts |= corpus_util.dead_letter_texts(c.data)
        unexpected = [(e.get("job", "")[:100], e.get("error")) for e in entries
                      if e.get("job") not in expected_texts]
        with self.subTest("P:dead holds the dead documents and nothing else"):
            self.assertEqual(len(entries), len(dead_cases),
                             "P:dead holds %d entries for %d dead documents; not expected "
                             "there: %r" % (len(entries), len(dead_cases), unexpected))

        # -- the worker's own state ----------------------------------------------
        self.assert_left_processing(worker)
        self.assertEqual(self.r.llen(self.key("queue")), 0)
        stats = self.stats()
        n_failed = sum(1 for c in failed_cases if self.status(c.id).get("state") == "failed")
        self.assertEqual(stats.get("jobs_dead", 0), len(entries))
        self.assertEqual(stats.get("jobs_failed", 0), n_failed)
        self.assertEqual(stats.get("jobs_succeeded", 0), 0)

        # -- still alive, same process, and still right ------------------------------
        self.assertTrue(worker.running())
        self.assertEqual(worker.pid, pid)
        self.check_good_job("good-after-corpus")
        self.assertTrue(worker.running())
        beat = self.r.hgetall(self.key("worker", worker.id))
        self.assertEqual(beat.get(b"pid"), str(pid).encode())

    def test_limits_met_exactly_are_accepted(self):
        """The good side of each corpus limit, on a worker with the corpus's limits."""
        mock = self.start_mock()
        self.start_worker(mock, **corpus_util.CORPUS_WORKER_ENV)
        max_bytes = int(corpus_util.CORPUS_WORKER_ENV["EXPORT_MAX_JOB_BYTES"])
        max_rows = int(corpus_util.CORPUS_WORKER_ENV["EXPORT_MAX_ROWS"])

        cases = corpus_util.limit_jobs(max_bytes, max_rows)
        for name, doc in cases.items():
            with self.subTest(name):
                data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                if name == "exact-bytes":
                    self.assertEqual(len(data), max_bytes)
                self.enqueue(data, jid=name)
                st = self.wait_state(name, timeout=60)
                self.assertEqual(st.get("state"), "succeeded", st)
                if name == "result-ttl-year":
                    self.assertGreater(self.r.ttl(self.key("job", name)), 31536000 - 60)
                if name == "string-32767":
                    ws = self.workbook(self.result_bytes(st)).active
                    self.assertEqual(ws["A2"].value, "\u20ac" * 32767)
                if name == "surrogate-pair-escape":
                    ws = self.workbook(self.result_bytes(st)).active
                    self.assertEqual(ws["A2"].value, "\U0001F600")

    def test_duplicate_members_first_wins(self):
        """Duplicate member names: JSON (RFC 8259) leaves their meaning open and
        PROTOCOL.md does not say. This documents what the worker does, which a
        backend that validates documents with another parser (Python's json
        keeps the last) must know: the first occurrence wins, for the id too."""
        mock = self.start_mock()
        self.start_worker(mock)
        doc = (b'{"id": "dup-sheet", "sheet": "First", "sheet": "Second", '
               b'"columns": [{"header": "A", "field": "a", "field": "b"}], '
               b'"rows": [{"a": "from-a", "b": "from-b", "a": "from-a2"}]}')
        self.enqueue(doc, jid="dup-sheet")
        st = self.wait_state("dup-sheet")
        self.assertEqual(st.get("state"), "succeeded", st)
        wb = self.workbook(self.result_bytes(st))
        self.assertEqual(wb.sheetnames, ["First"], "first occurrence of sheet should win")
        self.assertEqual(wb.active["A2"].value, "from-a")
        # Two ids: the job runs under the first; nothing is written under the second.
        doc = (b'{"id": "dup-id-first", "id": "dup-id-second", '
               b'"columns": [{"header": "A", "field": "a"}], "rows": [{"a": 1}]}')
        self.r.lpush(self.key("queue"), doc)
        st = self.wait_state("dup-id-first")
        self.assertEqual(st.get("state"), "succeeded", st)
        time.sleep(0.3)
        self.assertEqual(self.r.exists(self.key("job", "dup-id-second")), 0)
        print("\nduplicate members: the first occurrence wins (sheet, field, row member, id)")

    def test_non_json_number_forms_are_refused(self):
        """Text that is not JSON (RFC 8259 section 6: no leading zeros, digits after
        a decimal point) is not a job document: PROTOCOL.md section 2 sends a
        document that is not a JSON object to P:dead. A lenient parser here is a
        parser differential with the backends that validate documents."""
        self.start_worker(self.start_mock())
        forms = {"leading-zero": b"012", "minus-leading-zero": b"-01",
                 "trailing-point": b"1.", "point-before-exponent": b"1.e5",
                 "double-zero": b"00"}
        docs = {}
        for name, raw in forms.items():
            docs[name] = (b'{"id": "nj-%s", "columns": [{"header": "A", "field": "a"}], '
                          b'"rows": [{"a": %s}]}' % (name.encode(), raw))
            self.r.lpush(self.key("queue"), docs[name])
        self.wait_until("the queue drained", lambda: self.r.llen(self.key("queue")) == 0)
        time.sleep(1)
        dead = {json.loads(e)["job"] for e in self.r.lrange(self.key("dead"), 0, -1)}
        accepted = {name: self.status("nj-" + name).get("state") for name in forms
                    if docs[name].decode() not in dead}
        self.assertEqual(accepted, {}, "documents that are not JSON were run as jobs (state "
                         "by form) instead of going to P:dead")

    def test_rows_key_naming_the_workers_own_keys(self):
        """rows_key must begin with P:, so it can name the worker's own keys: the
        queue, the dead letters, the stats, another job's status or result, the
        job's own status or result. The worker deletes rows_key when the job ends,
        so such a document must not end in that key's deletion (queued jobs would
        be lost: PROTOCOL.md section 4, "no job is lost"), and a key that is not a
        list must end the job failed, not leave it in the processing list (section
        4, "bad input never stops a worker")."""
        slow = self.start_mock("--slow", "slow-*=1500")
        worker = self.start_worker(slow, EXPORT_JOB_TIMEOUT=20)
        self.wait_registered(worker)
        cols = [{"header": "A", "field": "a"}]
        problems = []

        def unstick(doc):
            """Takes a job that never ends out of the worker's hands."""
            for _ in range(50):
                self.r.lrem(self.key("queue"), 0, doc)
                self.r.lrem(self.key("processing", worker.id), 0, doc)
                time.sleep(0.1)
                if (self.r.lpos(self.key("queue"), doc) is None and
                        self.r.lpos(self.key("processing", worker.id), doc) is None):
                    return

        # 1. rows_key = P:queue while other jobs wait behind it, in a valid document
        # and in an invalid one (whose rows_key is deleted all the same).
        for n, (what, extra) in enumerate([("a valid", {}),
                                           ("an invalid", {"columns": "not an array"})]):
            blocker = "rk-blocker-%d" % n
            self.enqueue({"id": blocker, "lookup": {"service": "tether", "key": "a"},
                          "columns": [{"header": "A", "field": "a"},
                                      {"header": "N", "lookup": "/name"}],
                          "rows": [{"a": "slow-1"}]})
            self.wait_state(blocker, states=("running",), timeout=10)
            jid = "rk-queue-%d" % n
            doc = {"id": jid, "rows_key": self.key("queue"), "columns": cols}
            doc.update(extra)
            self.enqueue(doc)
            waiting = ["rk-waiting-%d-%d" % (n, i) for i in range(3)]
            for w in waiting:
                self.enqueue({"id": w, "columns": cols, "rows": [{"a": w}]})
            st = self.wait_state(jid, timeout=30)
            corpus_util.wait_for(lambda: all(self.status(w).get("state") in harness.TERMINAL
                                             for w in waiting), timeout=5)
            lost = [w for w in waiting if self.status(w).get("state") not in harness.TERMINAL]
            if lost:
                problems.append("rows_key = P:queue in %s document: the %d jobs queued behind "
                                "it were lost (still 'queued', gone from P:queue); the job "
                                "ended %s%s" % (what, len(lost), st.get("state"),
                                                " (%s)" % st["error_code"]
                                                if st.get("error_code") else
                                                " with %s rows" % st.get("rows_total")))

        # 2. rows_key naming keys of other kinds or of other jobs.
        self.r.rpush(self.key("dead"), b'{"job": "x", "error": "seed", "failed_at": 1}')
        self.r.hset(self.key("stats"), "seed", 1)
        self.r.hset(self.key("job", "other"), mapping={"state": "succeeded"})
        self.r.set(self.key("result", "other"), b"PK-not-really")
        for jid, rk, survived in [
                ("rk-dead", self.key("dead"),
                 lambda: self.r.lpos(self.key("dead"), b'{"job": "x", "error": "seed", '
                                     b'"failed_at": 1}') is not None),
                ("rk-stats", self.key("stats"), lambda: self.r.hexists(self.key("stats"),
                                                                       "seed")),
                ("rk-other-status", self.key("job", "other"),
                 lambda: self.r.exists(self.key("job", "other")) == 1),
                ("rk-other-result", self.key("result", "other"),
                 lambda: self.r.exists(self.key("result", "other")) == 1),
                ("rk-own-status", self.key("job", "rk-own-status"),
                 lambda: self.r.exists(self.key("job", "rk-own-status")) == 1),
                # A failed job has no result: the worker removes its own result
                # key as the job ends, whatever rows_key said.
                ("rk-own-result", self.key("result", "rk-own-result"), lambda: True)]:
            takes0 = self.command_calls("blmove")
            doc = self.enqueue({"id": jid, "rows_key": rk, "columns": cols})
            self.enqueue({"id": jid + "-behind", "columns": cols, "rows": [{"a": 1}]})
            st = corpus_util.wait_for(
                lambda: self.status(jid).get("state") in harness.TERMINAL, timeout=4)
            st = self.status(jid)
            if st.get("state") not in harness.TERMINAL:
                takes = self.command_calls("blmove") - takes0
                problems.append("rows_key = %s (a %s): the job never ends: state %r after "
                                "4 s, taken %d times (BLMOVE) and put back each time; the job "
                                "queued behind it is %r" % (
                                    "P" + rk[len(self.prefix):],
                                    self.r.type(rk).decode() if self.r.exists(rk) else "no key",
                                    st.get("state"), takes,
                                    self.status(jid + "-behind").get("state")))
                unstick(doc)
                self.wait_state(jid + "-behind", timeout=10)
                continue
            if not survived():
                problems.append("rows_key = %s: the job ended %s%s and the key was deleted" % (
                    "P" + rk[len(self.prefix):], st.get("state"),
                    " (%s)" % st["error_code"] if st.get("error_code") else ""))
            elif st.get("state") == "succeeded" and not self.r.exists(st.get("result_key", "")):
                problems.append("rows_key = %s: succeeded without a result"
                                % ("P" + rk[len(self.prefix):]))
        # The worker goes on.
        self.run_job({"id": "rk-after", "columns": cols, "rows": [{"a": 1}]}, timeout=30)
        self.assertTrue(worker.running())
        self.assertEqual(problems, [], "\n".join(problems))


if __name__ == "__main__":
    harness.main()
