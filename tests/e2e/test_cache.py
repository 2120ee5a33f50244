"""The lookup cache the fleet shares (EXPORT_SERVICE_<NAME>_CACHE_TTL;
PROTOCOL.md section 4): a hit (a 200 with a JSON body) is kept under
P:cache:<name>:<key> with the TTL, as the response body, and any job of any
worker uses it instead of a request: it counts in lookups and lookups_done,
not in lookup_requests, and in export_lookup_cache_total. A second export of
the same keys sends no request and gives the same workbook; a job with some
keys cached asks only for the others; entries expire; errors and bodies over
_CACHE_MAX_BYTES are never cached; an entry that is corrupted or of another
type is a miss, not a crash. With a batch endpoint, only the misses are
batched."""

import collections
import io
import json
import math
import os
import sys
import time

import openpyxl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import lookup_job_doc, mock_body  # noqa: E402
from test_metrics import MetricsTest  # noqa: E402


def sheet_values(data):
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    return [[c.value for c in row] for row in ws.iter_rows()]


class Cache(MetricsTest):

    def record_path(self, name):
        return os.path.join(self.tmp, name + ".record")

    def cache_key(self, key, service="tether"):
        return self.key("cache", service, key)

    def requested(self, rec):
        return collections.Counter(k for _, k in harness.read_record(rec))

    def test_a_repeat_export_sends_no_request(self):
        rec = self.record_path("repeat")
        mock = self.start_mock("--record", rec, latency_ms=50)
        w, base = self.start_metrics_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                                            EXPORT_POOL_SIZE=8)
        keys = ["C-%03d" % i for i in range(150)]
        job = lookup_job_doc("first", keys + keys[:10],
                             extra_columns=[{"header": "Echo", "lookup": "/sn"}])
        t0 = time.monotonic()
        st1 = self.run_job(job, timeout=60)
        first_s = time.monotonic() - t0
        self.assert_workbook(st1, job)
        self.assertEqual(mock.stats()["lookups"], 150)
        # Each answer is in the cache, as the body the service gave, with the TTL.
        for k in keys:
            raw = self.r.get(self.cache_key(k))
            self.assertIsNotNone(raw, k)
            self.assertEqual(json.loads(raw), mock_body(k))
            self.assertTrue(0 < self.r.ttl(self.cache_key(k)) <= 60)

        t0 = time.monotonic()
        st2 = self.run_job(dict(job, id="second"), timeout=60)
        second_s = time.monotonic() - t0
        self.assertEqual(mock.stats()["lookups"], 150, "the second export sent requests")
        self.assertEqual(sheet_values(self.result_bytes(st2)), sheet_values(self.result_bytes(st1)))
        self.assertEqual(st2.get("lookups_done"), "150")
        self.assertEqual(st2.get("lookups_total"), "150")
        stats = self.stats()
        self.assertEqual(stats.get("lookups"), 300)
        self.assertEqual(stats.get("lookup_requests"), 150)
        s = self.scrape(base)
        self.assertEqual(s.get("export_lookup_cache_total", service="tether", result="hit"), 150)
        self.assertEqual(s.get("export_lookup_cache_total", service="tether", result="miss"), 150)
        self.assertEqual(s.total("export_lookups_total", service="tether"), 300)
        print("\n  first export %.2f s, 150 requests; repeat %.2f s, 0 requests"
              % (first_s, second_s))

    def test_only_the_missing_keys_are_requested(self):
        rec = self.record_path("partial")
        mock = self.start_mock("--record", rec, latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60)
        self.run_job(lookup_job_doc("half", ["M-%d" % i for i in range(50)]))
        self.assertEqual(len(self.requested(rec)), 50)
        keys = ["M-%d" % i for i in range(100)]
        job = lookup_job_doc("all", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        got = self.requested(rec)
        self.assertEqual(sum(got.values()), 100)
        self.assertEqual(set(got), set(keys), "each key asked once over the two jobs")

    def test_another_worker_uses_the_cache(self):
        mock = self.start_mock(latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60)
        keys = ["W-%d" % i for i in range(40)]
        self.run_job(lookup_job_doc("on-w1", keys))
        self.workers[0].stop()
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60)
        job = lookup_job_doc("on-w2", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        self.assertEqual(mock.stats()["lookups"], 40)

    def test_entries_expire(self):
        mock = self.start_mock(latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=1)
        keys = ["X-%d" % i for i in range(20)]
        self.run_job(lookup_job_doc("fresh", keys))
        self.run_job(lookup_job_doc("cached", keys))
        self.assertEqual(mock.stats()["lookups"], 20)
        self.wait_until("the entries to expire",
                        lambda: not any(self.r.exists(self.cache_key(k)) for k in keys),
                        timeout=5)
        job = lookup_job_doc("expired", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        self.assertEqual(mock.stats()["lookups"], 40)

    def test_corrupted_and_foreign_entries_are_misses(self):
        rec = self.record_path("corrupt")
        mock = self.start_mock("--record", rec, latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                          EXPORT_SERVICE_TETHER_CACHE_MAX_BYTES=4096)
        good = mock_body("OK-1")
        self.r.set(self.cache_key("CUT"), json.dumps(mock_body("CUT"))[:-5])
        self.r.set(self.cache_key("BIN"), b"\xff\xfe\x00binary")
        self.r.set(self.cache_key("EMPTY"), b"")
        self.r.set(self.cache_key("BIG"), json.dumps(dict(mock_body("BIG"), pad="x" * 5000)))
        self.r.rpush(self.cache_key("LIST"), "a", "b")
        self.r.hset(self.cache_key("HASH"), "f", "v")
        self.r.sadd(self.cache_key("SET"), "m")
        self.r.set(self.cache_key("OK-1"), json.dumps(good))
        keys = ["CUT", "BIN", "EMPTY", "BIG", "LIST", "HASH", "SET", "OK-1", "NEW"]
        job = lookup_job_doc("corrupt", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        got = self.requested(rec)
        self.assertEqual(set(got), set(keys) - {"OK-1"})
        # The answers that came replaced what was there, whatever its type.
        for k in keys:
            self.assertEqual(self.r.type(self.cache_key(k)), b"string", k)
            if k != "BIG":
                self.assertEqual(json.loads(self.r.get(self.cache_key(k))), mock_body(k), k)

    def test_errors_and_large_bodies_are_not_cached(self):
        mock = self.start_mock("--fail", "E500=500", "--fail", "E404=404", "--garbage", "JUNK",
                               "--huge", "HUGE=70000", "--redirect", "MOVED", latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                          EXPORT_SERVICE_TETHER_RETRIES=0)
        keys = ["E500", "E404", "JUNK", "HUGE", "MOVED", "FINE"]
        job = lookup_job_doc("errors", keys, on_lookup_error="blank")
        st = self.run_job(job)
        self.assert_workbook(st, job, failed_keys={"E500", "E404", "JUNK", "MOVED"})
        cached = sorted(k.decode().rsplit(":", 1)[1]
                        for k in self.r.scan_iter(match=self.key("cache", "tether", "*")))
        self.assertEqual(cached, ["FINE"], "only a 200 JSON answer within 64 KiB is cached")

    def test_an_answer_this_job_cannot_use_is_still_a_hit(self):
        # A JSON answer whose value has the wrong type for one job's column is
        # a lookup error for that job, and a good answer for another.
        mock = self.start_mock(latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60)
        typed = [{"header": "Name as number", "lookup": "/name", "type": "number"}]
        st = self.run_job(lookup_job_doc("typed", ["T-1"], extra_columns=typed,
                                         on_lookup_error="blank"))
        self.assertEqual(st.get("lookups_failed"), "1")
        self.assertTrue(self.r.exists(self.cache_key("T-1")))
        job = lookup_job_doc("plain", ["T-1"])
        self.assert_workbook(self.run_job(job), job)
        st = self.run_job(lookup_job_doc("typed-2", ["T-1"], extra_columns=typed,
                                         on_lookup_error="blank"))
        self.assertEqual(st.get("lookups_failed"), "1")
        self.assertEqual(mock.stats()["lookups"], 1)
        self.assertEqual(self.stats().get("lookup_errors"), 2)

    def test_only_misses_are_batched(self):
        rec = self.record_path("batched")
        mock = self.start_mock("--record", rec, latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                          EXPORT_SERVICE_TETHER_BATCH_URL=mock.base + "/batch/{keys}",
                          EXPORT_SERVICE_TETHER_BATCH_MAX=50)
        self.run_job(lookup_job_doc("b1", ["B-%03d" % i for i in range(120)]))
        self.assertEqual(mock.stats()["batches"], math.ceil(120 / 50))
        keys = ["B-%03d" % i for i in range(60, 240)]
        job = lookup_job_doc("b2", keys)
        st = self.run_job(job)
        self.assert_workbook(st, job)
        s = mock.stats()
        self.assertEqual(s["batches"], math.ceil(120 / 50) + math.ceil(120 / 50), s)
        self.assertEqual(s["batch_keys"], 240)
        self.assertEqual(self.stats().get("lookup_requests"), s["batches"])
        self.assertEqual(self.stats().get("lookups"), 120 + 180)

    def test_redis_settings_and_key_names(self):
        mock = self.start_mock(latency_ms=0)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_CACHE_TTL=60,
                          EXPORT_SERVICE_BILLING_URL=mock.url(),
                          EXPORT_SERVICE_BILLING_CACHE_TTL=30)
        key = "Mixed Case/\u00e9:1"
        job = lookup_job_doc("names", [key])
        job["lookup"]["service"] = "BiLLiNg"
        self.run_job(job)
        self.assertTrue(self.r.exists(self.cache_key(key, "billing")))
        self.assertFalse(self.r.exists(self.cache_key(key, "tether")))
        self.assertTrue(0 < self.r.ttl(self.cache_key(key, "billing")) <= 30)

    def test_rows_key_may_not_name_the_cache_or_the_caps(self):
        self.start_worker(None)
        for n, key in enumerate((self.cache_key("X"), self.key("limit", "tether", "permits"),
                                 self.key("limit", "tether", "rate"))):
            self.r.rpush(key, json.dumps({"a": 1}))
            st = self.run_job({"id": "own-%d" % n, "columns": [{"header": "A", "field": "a"}],
                               "rows_key": key}, expect="failed")
            self.assertEqual(st.get("error_code"), "invalid_job", st)
            self.assertEqual(self.r.llen(key), 1, "the worker deleted %s" % key)


if __name__ == "__main__":
    harness.main()
