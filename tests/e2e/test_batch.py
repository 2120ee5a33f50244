"""Batch lookups (EXPORT_SERVICE_<NAME>_BATCH_URL, _BATCH_MAX; PROTOCOL.md
section 4): a job's n distinct keys go in ceil(n / _BATCH_MAX) requests, not
through _URL; the workbook is the one single lookups give; keys are escaped
as for {key} and joined by ',' (a ',' inside a key stays in its key); a key
missing from the answer is a final lookup error for that key alone; a 5xx or
a timeout retries the whole batch under the rules of single lookups, and a
batch counts once in lookup_requests."""

import collections
import io
import math
import os
import sys

import openpyxl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, lookup_job_doc  # noqa: E402

# Keys that need escaping, commas first: each must reach the service whole.
AWKWARD = ["a,b", "a", "b", "c%2Cd", ",", ",,x", "x y", "sl/ash", "q?u&e=ry", "+plus",
           "caf\u00e9", "\u4e2d\u6587", "..", "~tilde", "semi;colon"]


def sheet_values(data):
    """Every cell value of the first sheet, row by row."""
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    return [[c.value for c in row] for row in ws.iter_rows()]


class Batch(RobustTest):

    def record_path(self, name):
        return os.path.join(self.tmp, name + ".record")

    def batch_worker(self, mock, path="/batch/{keys}", **env):
        env.setdefault("EXPORT_SERVICE_TETHER_BATCH_URL", mock.base + path)
        return self.start_worker(mock, **env)

    def test_batches_give_the_workbook_of_single_lookups(self):
        rec = self.record_path("batch")
        mock = self.start_mock("--record", rec, "--batch-max", "100", latency_ms=20)
        # Service SINGLE is the same service without a batch endpoint.
        single = self.start_mock(latency_ms=0)
        self.batch_worker(mock, EXPORT_SERVICE_SINGLE_URL=single.url())
        keys = ["K-%03d" % i for i in range(230)] + AWKWARD
        rows = keys + keys[:40]  # repeated keys are looked up once
        job = lookup_job_doc("batch-1", rows, extra_columns=[{"header": "Echo", "lookup": "/sn"}])
        st = self.run_job(job, timeout=60)
        self.assert_workbook(st, job)
        n = len(set(keys))
        want_requests = math.ceil(n / 100)
        s = mock.stats()
        self.assertEqual((s["lookups"], s["batches"], s["batch_keys"]),
                         (want_requests, want_requests, n), s)
        stats = self.stats()
        self.assertEqual(stats.get("lookups"), n)
        self.assertEqual(stats.get("lookup_requests"), want_requests)
        self.assertEqual(st.get("lookups_done"), str(n))
        # The service got every key exactly once, each exactly as it is.
        record = harness.read_record(rec)
        self.assertEqual(collections.Counter(k for _, k in record), collections.Counter(set(keys)))
        self.assertTrue(all(t.startswith("/batch/") for t, _ in record))

        # The same keys through _URL, one request each: the same cells.
        st2 = self.run_job(dict(job, id="single-1", lookup={"service": "single", "key": "sn"}),
                           timeout=60)
        self.assertEqual(sheet_values(self.result_bytes(st2)),
                         sheet_values(self.result_bytes(st)))
        self.assertEqual(single.stats()["lookups"], n)

    def test_query_template_and_batch_max(self):
        mock = self.start_mock("--batch-max", "7", latency_ms=0)
        self.batch_worker(mock, path="/batch?sn={keys}", EXPORT_SERVICE_TETHER_BATCH_MAX=7)
        keys = ["Q-%d" % i for i in range(20)] + ["a,b", "c d"]
        job = lookup_job_doc("batch-q", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        self.assertEqual(mock.stats()["batches"], math.ceil(len(keys) / 7))
        self.assertEqual(self.stats().get("lookup_requests"), math.ceil(len(keys) / 7))

    def test_partial_answers(self):
        # --fail with a status below 500 leaves the key out of the batch answer.
        mock = self.start_mock("--fail", "GONE-*=404", latency_ms=0)
        self.batch_worker(mock)
        keys = ["P-%d" % i for i in range(30)] + ["GONE-1", "GONE-2"]
        job = lookup_job_doc("partial-blank", keys, on_lookup_error="blank")
        st = self.run_job(job)
        self.assert_workbook(st, job, failed_keys={"GONE-1", "GONE-2"})
        self.assertEqual(st.get("lookups_failed"), "2")
        self.assertEqual(self.stats().get("lookup_errors"), 2)
        self.assertEqual(mock.stats()["lookups"], 1, "a missing key is not asked again")

        st = self.run_job(lookup_job_doc("partial-fail", keys), expect="failed")
        self.assertEqual(st.get("error_code"), "lookup_failed")
        self.assertIn("missing from the batch answer", st.get("error", ""))
        self.assertIn("GONE-", st.get("error", ""))

    def test_a_failing_batch_is_retried_whole(self):
        rec = self.record_path("retry")
        # Half the batches fail at random: retried until they pass.
        mock = self.start_mock("--error-rate", "0.5", "--seed", "3", "--record", rec,
                               latency_ms=0)
        self.batch_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=10,
                          EXPORT_SERVICE_TETHER_BATCH_MAX=10)
        keys = ["R-%02d" % i for i in range(60)]
        job = lookup_job_doc("retried", keys)
        st = self.run_job(job, timeout=60)
        self.assert_workbook(st, job)
        s = mock.stats()
        self.assertGreater(s["by_status"].get("500", 0), 0, s)
        self.assertEqual(self.stats().get("lookup_requests"), s["lookups"],
                         "each attempt of a batch counts once")
        self.assertEqual(self.stats().get("lookups"), 60)
        # Every attempt of a batch named the same 10 keys as its first.
        targets = collections.Counter(t for t, _ in harness.read_record(rec))
        self.assertEqual(len(targets), 6)
        self.assertEqual({n % 10 for n in targets.values()}, {0})
        self.assertEqual(sum(targets.values()) // 10, s["lookups"])
        self.assertGreater(max(targets.values()), 10, "some batch was retried")

    def test_final_failures_fail_the_batch_keys(self):
        mock = self.start_mock("--fail", "DOWN-*=503", "--slow", "SLOW-*=3000", latency_ms=0)
        self.batch_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=2,
                          EXPORT_SERVICE_TETHER_TIMEOUT_MS=400,
                          EXPORT_SERVICE_TETHER_BATCH_MAX=4)
        # One batch of 4 holding a key that always gets a 503, one with a key
        # that always times out, one that is fine.
        keys = ["DOWN-1", "A1", "A2", "A3", "SLOW-1", "B1", "B2", "B3", "C1", "C2", "C3", "C4"]
        job = lookup_job_doc("final", keys, on_lookup_error="blank")
        st = self.run_job(job, timeout=60)
        failed = set(keys[:8])
        self.assert_workbook(st, job, failed_keys=failed)
        self.assertEqual(st.get("lookups_failed"), "8")
        # 3 attempts each for the two failing batches, 1 for the good one.
        self.assertEqual(self.stats().get("lookup_requests"), 3 + 3 + 1)
        self.assertEqual(self.stats().get("lookup_errors"), 8)

    def test_answer_that_is_not_an_object(self):
        mock = self.start_mock("--garbage", "JUNK", latency_ms=0)
        self.batch_worker(mock, EXPORT_SERVICE_TETHER_BATCH_MAX=3)
        keys = ["JUNK", "D1", "D2", "E1", "E2", "E3"]
        job = lookup_job_doc("junk", keys, on_lookup_error="blank")
        st = self.run_job(job)
        self.assert_workbook(st, job, failed_keys={"JUNK", "D1", "D2"})
        st = self.run_job(lookup_job_doc("junk-fail", keys), expect="failed")
        self.assertIn("not JSON", st.get("error", ""))

    def test_bad_batch_templates_are_refused(self):
        for url, why in (("http://h/batch/{key}", "{keys}"), ("http://{keys}/x", "host"),
                         ("ftp://h/{keys}", "http")):
            env = self.worker_env(None, EXPORT_SERVICE_TETHER_URL="http://h/{key}",
                                  EXPORT_SERVICE_TETHER_BATCH_URL=url)
            rc, out = self.run_worker_once(env=env)
            self.assertEqual(rc, 2, out)
            self.assertIn("EXPORT_SERVICE_TETHER_BATCH_URL", out)
            self.assertIn(why, out)
        env = self.worker_env(None, EXPORT_SERVICE_TETHER_URL="http://h/{key}",
                              EXPORT_SERVICE_TETHER_BATCH_MAX=0)
        rc, out = self.run_worker_once(env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn("EXPORT_SERVICE_TETHER_BATCH_MAX", out)


if __name__ == "__main__":
    harness.main()
