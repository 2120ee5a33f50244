"""Bad input never stops a worker: invalid jobs end failed with a clear error,
documents without a usable id go to P:dead, lookup failures follow
on_lookup_error, and the worker goes on to complete a good job each time."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402


def base_job(jid):
    return {
        "id": jid,
        "sheet": "S",
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [
            {"header": "SN", "field": "sn"},
            {"header": "Amount", "field": "amount", "type": "number"},
            {"header": "Signed", "field": "signed_on", "type": "date"},
            {"header": "Name", "lookup": "/name"},
        ],
        "rows": [{"sn": "C-%d" % i, "amount": i * 1.5, "signed_on": "2026-01-%02d" % (i + 1)}
                 for i in range(8)],
    }


def good_job(jid):
    return {"id": jid, "columns": [{"header": "A", "field": "a"},
                                   {"header": "N", "lookup": "/score", "type": "integer"}],
            "lookup": {"service": "tether", "key": "a"},
            "rows": [{"a": "k1"}, {"a": "k2"}]}


def mutate(fn):
    """A case built from base_job by @fn(job), which edits it in place."""
    def build(jid):
        job = base_job(jid)
        fn(job)
        return job
    return build


GOOD_VALUE = {"string": "ok", "number": 1.5, "integer": 1, "boolean": True,
              "date": "2026-01-01", "datetime": "2026-01-01T00:00:00Z"}


def with_column(col, value):
    def fn(job):
        job["columns"].append(col)
        for row in job["rows"]:
            row[col["field"]] = GOOD_VALUE[col.get("type", "string")]
        job["rows"][5][col["field"]] = value
    return mutate(fn)


def raw_with(jid, fragment):
    """The base job as JSON text with @fragment (raw bytes) spliced in as a member."""
    text = json.dumps(base_job(jid)).encode()
    return text[:-1] + b", " + fragment + b"}"


ROW = r"(\b5\b|\b6\b)"  # rows[5], 0-based, or row 6, 1-based

# name: (build(jid) -> dict or bytes, patterns the error must match)
INVALID = {
    "column_type_typo": (mutate(lambda j: j["columns"][1].update(type="nubmer")),
                         [r"columns\[", "nubmer"]),
    "column_field_and_lookup": (mutate(lambda j: j["columns"][0].update(lookup="/sn")),
                                [r"columns\[", "field", "lookup"]),
    "column_neither_field_nor_lookup": (mutate(lambda j: j["columns"][0].pop("field")),
                                        [r"columns\[", "field|lookup"]),
    "column_without_header": (mutate(lambda j: j["columns"][1].pop("header")),
                              [r"columns\[", "header"]),
    "columns_empty": (mutate(lambda j: j.update(columns=[])), ["columns"]),
    "columns_missing": (mutate(lambda j: j.pop("columns")), ["columns"]),
    "columns_not_array": (mutate(lambda j: j.update(columns={"header": "A", "field": "a"})),
                          ["columns"]),
    "rows_not_array": (mutate(lambda j: j.update(rows={"sn": "C-1"})), ["rows"]),
    "rows_missing": (mutate(lambda j: j.pop("rows")), ["rows"]),
    "row_not_object": (mutate(lambda j: j["rows"].__setitem__(5, ["C-5", 1])), ["row", ROW]),
    "number_given_string": (mutate(lambda j: j["rows"][5].update(amount="12")),
                            [ROW, "amount"]),
    "number_given_bool": (mutate(lambda j: j["rows"][5].update(amount=True)), [ROW, "amount"]),
    "date_bad_month": (mutate(lambda j: j["rows"][5].update(signed_on="2026-13-01")),
                       [ROW, "signed"]),
    "date_bad_day": (mutate(lambda j: j["rows"][5].update(signed_on="2026-02-30")),
                     [ROW, "signed"]),
    "date_bad_syntax": (mutate(lambda j: j["rows"][5].update(signed_on="02/01/2026")),
                        [ROW, "signed"]),
    "datetime_bad_hour": (with_column({"header": "When", "field": "when", "type": "datetime"},
                                      "2026-01-01T25:00:00Z"), [ROW, "when"]),
    "integer_with_fraction": (with_column({"header": "Units", "field": "units",
                                           "type": "integer"}, 1.5), [ROW, "units"]),
    "integer_beyond_2_pow_53": (with_column({"header": "Units", "field": "units",
                                             "type": "integer"}, 2**53 + 2), [ROW, "units"]),
    "boolean_given_string": (with_column({"header": "Flag", "field": "flag",
                                          "type": "boolean"}, "yes"), [ROW, "flag"]),
    "string_given_object": (mutate(lambda j: j["rows"][5].update(sn={"a": 1})), [ROW, "sn"]),
    "string_given_array": (mutate(lambda j: j["rows"][5].update(sn=[1])), [ROW, "sn"]),
    "string_column_given_object": (with_column({"header": "Memo", "field": "memo"}, {"a": 1}),
                                   [ROW, "memo"]),
    "unknown_lookup_service": (mutate(lambda j: j["lookup"].update(service="nosuch")),
                               ["nosuch"]),
    "lookup_with_url": (mutate(lambda j: j["lookup"].update(url="http://127.0.0.1:1/")),
                        ["url"]),
    "lookup_with_header": (mutate(lambda j: j["lookup"].update(headers={"X": "y"})),
                           ["headers"]),
    "lookup_without_key": (mutate(lambda j: j["lookup"].pop("key")), ["key"]),
    "lookup_column_without_lookup": (mutate(lambda j: j.pop("lookup")), ["lookup"]),
    "lookup_pointer_not_a_pointer": (mutate(lambda j: j["columns"][3].update(lookup="name")),
                                     [r"columns\["]),
    "on_lookup_error_unknown": (mutate(lambda j: j.update(on_lookup_error="maybe")),
                                ["on_lookup_error"]),
    "result_ttl_negative": (mutate(lambda j: j.update(result_ttl=-5)), ["result_ttl"]),
    "result_ttl_not_number": (mutate(lambda j: j.update(result_ttl="1d")), ["result_ttl"]),
    "filename_not_string": (mutate(lambda j: j.update(filename=5)), ["filename"]),
    "sheet_empty": (mutate(lambda j: j.update(sheet="")), ["sheet"]),
    "sheet_too_long": (mutate(lambda j: j.update(sheet="x" * 32)), ["sheet"]),
    "width_not_number": (mutate(lambda j: j["columns"][0].update(width="wide")), ["width"]),
    "too_many_columns": (mutate(lambda j: j.update(columns=[
        {"header": "C%d" % i, "field": "f%d" % i} for i in range(16385)])), ["columns", "16384"]),
    "invalid_utf8": (lambda jid: raw_with(jid, b'"note": "caf\xc3 \xff\xfe"'), [r"utf-?8"]),
    "nesting_40_deep": (lambda jid: raw_with(jid, b'"future": ' + b"[" * 40 + b"]" * 40),
                        [r"nest|deep|depth|32"]),
}
for ch in "[]:*?/\\":
    INVALID["sheet_with_%02x" % ord(ch)] = (
        mutate(lambda j, ch=ch: j.update(sheet="a%sb" % ch)), ["sheet"])


class InvalidJobs(E2ETest):
    """Every way of breaking PROTOCOL.md section 2 in the table above, one
    subtest each, all against one worker: each job ends failed, and the worker
    then completes a good job."""

    def test_invalid_jobs_fail_and_the_worker_goes_on(self):
        mock = self.start_mock()
        worker = self.start_worker(mock)
        events = harness.Events(self.r, self.key("events"))
        try:
            for name, (build, patterns) in INVALID.items():
                with self.subTest(name):
                    self.check_invalid(worker, events, name, build, patterns)
        finally:
            events.stop()

    def check_invalid(self, worker, events, name, build, patterns):
        before = self.stats()
        jid = "bad-" + name.replace("_", "-")
        doc = build(jid)
        if isinstance(doc, dict):
            self.enqueue(doc)
        else:
            self.enqueue(doc, jid=jid)
        st = self.wait_state(jid)
        self.assertEqual(st.get("state"), "failed", st)
        self.assertEqual(st.get("error_code"), "invalid_job", st)
        error = st.get("error", "")
        for p in patterns:
            self.assertRegex(error, re.compile(p, re.I), "error %r should match %r" % (error, p))
        self.assertRegex(st.get("finished_at", ""), r"^\d{13}$")
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        self.assertNotIn("result_key", st)
        ttl = self.r.ttl(self.key("job", jid))
        self.assertTrue(0 < ttl <= 86400, "status TTL %d" % ttl)
        self.assert_left_processing(worker)
        # The worker goes on.
        self.run_job(good_job("good-after-" + jid))
        self.assert_left_processing(worker)
        self.assertEqual(self.r.llen(self.key("queue")), 0)
        stats = self.stats()
        for counter in ("jobs_failed", "jobs_succeeded"):
            self.assertEqual(stats.get(counter, 0) - before.get(counter, 0), 1, counter)
        time.sleep(0.05)
        mine = [json.loads(m) for _, m in events.messages if json.loads(m).get("id") == jid]
        self.assertTrue(mine and mine[-1]["state"] == "failed",
                        "the last event of %s is not state failed: %r" % (jid, mine))


class Limits(E2ETest):

    def test_document_over_max_job_bytes_is_too_large(self):
        mock = self.start_mock()
        worker = self.start_worker(mock, EXPORT_MAX_JOB_BYTES=2048)
        job = base_job("big")
        job["rows"].append({"sn": "x" * 3000})
        doc = self.enqueue(job)
        self.assertGreater(len(doc), 2048)
        st = self.wait_state("big")
        self.assertEqual(st.get("state"), "failed", st)
        self.assertEqual(st.get("error_code"), "too_large", st)
        self.assertRegex(st.get("error", ""), r"2048|EXPORT_MAX_JOB_BYTES")
        self.assert_left_processing(worker)
        self.run_job(good_job("small"))

    def test_document_of_exactly_max_job_bytes_is_accepted(self):
        mock = self.start_mock()
        self.start_worker(mock, EXPORT_MAX_JOB_BYTES=2048)
        job = good_job("exact")
        job["pad"] = ""
        job["pad"] = "p" * (2048 - len(json.dumps(job)))
        self.assertEqual(len(json.dumps(job)), 2048)
        self.run_job(job)

    def test_job_timeout(self):
        mock = self.start_mock(latency_ms=4000)
        worker = self.start_worker(mock, EXPORT_JOB_TIMEOUT=1)
        job = base_job("slow")
        t0 = time.monotonic()
        self.enqueue(job)
        st = self.wait_state("slow", timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(st.get("state"), "failed", st)
        self.assertEqual(st.get("error_code"), "timeout", st)
        self.assertRegex(st.get("error", ""), re.compile(r"EXPORT_JOB_TIMEOUT|time", re.I))
        self.assertLess(took, 3.5, "the job ran %.1f s past a 1 s timeout" % took)
        self.assertEqual(self.r.exists(self.key("result", "slow")), 0)
        self.assert_left_processing(worker)

    def test_lookup_response_over_max_response_bytes(self):
        mock = self.start_mock("--huge", "H*=200000")
        self.start_worker(mock, EXPORT_MAX_RESPONSE_BYTES=65536)
        job = good_job("huge")
        job["rows"] = [{"a": "H-1"}, {"a": "k1"}]
        job["on_lookup_error"] = "blank"
        st = self.run_job(job)
        self.assertEqual(st["lookups_failed"], "1")
        ws = self.workbook(self.result_bytes(st)).active
        self.assert_rows(ws, job["columns"], job["rows"], lookup_key="a", failed_keys={"H-1"})


class DeadLetters(E2ETest):

    def test_documents_without_usable_id_go_to_dead(self):
        self.start_worker(self.start_mock())
        docs = [
            b"this is not json",
            b'[{"id": "in-an-array"}]',
            b'{"columns": [{"header": "A", "field": "a"}], "rows": []}',
            b'{"id": "has space", "columns": [{"header": "A", "field": "a"}], "rows": []}',
            ('{"id": "%s", "columns": [{"header": "A", "field": "a"}], "rows": []}'
             % ("x" * 129)).encode(),
            b'{"id": 42, "columns": [{"header": "A", "field": "a"}], "rows": []}',
            b'{"id": "", "columns": [{"header": "A", "field": "a"}], "rows": []}',
            b'{"id": "slash/id", "columns": [{"header": "A", "field": "a"}], "rows": []}',
            b"\xff\xfe not json either",
            b'{"id": "trunc',
            b"",
        ]
        t0 = harness.now_ms()
        for d in docs:
            self.enqueue(d, status=False)
        self.wait_until("%d entries in P:dead" % len(docs),
                        lambda: self.r.llen(self.key("dead")) >= len(docs), timeout=20)
        time.sleep(0.2)
        entries = [json.loads(e) for e in self.r.lrange(self.key("dead"), 0, -1)]
        self.assertEqual(len(entries), len(docs), entries)
        want = sorted(d.decode("utf-8", "replace") for d in docs)
        self.assertEqual(sorted(e.get("job") for e in entries), want)
        for e in entries:
            self.assertIsInstance(e, dict)
            self.assertIsInstance(e.get("error"), str, e)
            self.assertTrue(e["error"], e)
            self.assertTrue(isinstance(e.get("failed_at"), (int, float))
                            and not isinstance(e.get("failed_at"), bool), e)
            self.assertTrue(t0 - 1000 <= e["failed_at"] <= harness.now_ms() + 1000, e)
        self.assertEqual(self.stats().get("jobs_dead"), len(docs))
        self.assertEqual(self.r.llen(self.key("queue")), 0)
        # Still working, and ids at the edge of the rules are usable.
        self.run_job(good_job("good"))
        self.run_job(good_job("y" * 128))
        self.run_job(good_job("AZaz09._:-"))
        self.assertEqual(self.stats().get("jobs_dead"), len(docs))


class LookupFailures(E2ETest):

    ROWS = [{"a": k} for k in ["OK-1", "BAD-1", "OK-2", "BAD-2", "BAD-1", "OK-1"]]

    def lookup_job(self, jid, rows, on_error, columns=None):
        job = good_job(jid)
        job["rows"] = rows
        job["on_lookup_error"] = on_error
        if columns is not None:
            job["columns"] = columns
        return job

    def test_404_under_fail(self):
        mock = self.start_mock("--fail", "BAD*=404")
        worker = self.start_worker(mock)
        st = self.run_job(self.lookup_job("f404", self.ROWS, "fail"), expect="failed")
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertRegex(st["error"], r"BAD-[12]")
        self.assertEqual(self.r.exists(self.key("result", "f404")), 0)
        self.assert_left_processing(worker)
        self.run_job(good_job("after"))

    def test_404_under_blank(self):
        mock = self.start_mock("--fail", "BAD*=404")
        self.start_worker(mock)
        job = self.lookup_job("b404", self.ROWS, "blank")
        st = self.run_job(job)
        ws = self.workbook(self.result_bytes(st)).active
        self.assert_rows(ws, job["columns"], job["rows"], lookup_key="a",
                         failed_keys={"BAD-1", "BAD-2"})
        self.assertEqual(st["lookups_total"], "4")
        self.assertEqual(st["lookups_done"], "4")
        self.assertEqual(st["lookups_failed"], "2")
        self.assertEqual(mock.lookups(), 4, "a 404 is final: one request per key")
        stats = self.stats()
        self.assertEqual(stats.get("lookups"), 4)
        self.assertEqual(stats.get("lookup_requests"), 4)
        self.assertEqual(stats.get("lookup_errors"), 2)

    def test_not_json_is_a_final_lookup_error(self):
        mock = self.start_mock("--garbage", "G*")
        self.start_worker(mock)
        st = self.run_job(self.lookup_job("garbage", [{"a": "OK-1"}, {"a": "G-1"}], "fail"),
                          expect="failed")
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertIn("G-1", st["error"])
        self.assertLessEqual(mock.lookups(), 2, "a 200 that is not JSON is not retried")
        job = self.lookup_job("garbage-blank", [{"a": "OK-1"}, {"a": "G-2"}], "blank")
        st = self.run_job(job)
        self.assertEqual(st["lookups_failed"], "1")
        self.assert_rows(self.workbook(self.result_bytes(st)).active, job["columns"],
                         job["rows"], lookup_key="a", failed_keys={"G-2"})

    def test_redirect_is_not_followed(self):
        mock = self.start_mock("--redirect", "M*")
        self.start_worker(mock)
        job = self.lookup_job("redirect", [{"a": "M-1"}, {"a": "OK-1"}], "blank")
        st = self.run_job(job)
        self.assertEqual(st["lookups_failed"], "1")
        self.assertEqual(mock.lookups(), 2)
        self.assert_rows(self.workbook(self.result_bytes(st)).active, job["columns"],
                         job["rows"], lookup_key="a", failed_keys={"M-1"})

    def test_wrong_type_is_a_lookup_error_for_the_key(self):
        mock = self.start_mock()
        worker = self.start_worker(mock)
        columns = [{"header": "A", "field": "a"},
                   {"header": "Score", "lookup": "/score", "type": "integer"},
                   {"header": "Bad", "lookup": "/name", "type": "number"}]
        st = self.run_job(self.lookup_job("wrongtype", [{"a": "K-1"}], "fail", columns),
                          expect="failed")
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertIn("K-1", st["error"])
        self.assert_left_processing(worker)
        # Under blank every lookup cell of the key stays empty, the good one too.
        rows = [{"a": "K-1"}, {"a": "K-2"}, {"a": "K-1"}]
        job = self.lookup_job("wrongtype-blank", rows, "blank", columns)
        st = self.run_job(job)
        self.assertEqual(st["lookups_failed"], "2")
        self.assertEqual(st["lookups_total"], "2")
        self.assert_rows(self.workbook(self.result_bytes(st)).active, columns, rows,
                         lookup_key="a", failed_keys={"K-1", "K-2"})

    def test_5xx_and_429_are_retried(self):
        mock = self.start_mock("--fail", "R*=503", "--fail", "T*=429", "--fail", "E*=500")
        self.start_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=2)
        rows = [{"a": k} for k in ["R-1", "OK-1", "T-1", "E-1", "R-1"]]
        job = self.lookup_job("retries", rows, "blank")
        t0 = time.monotonic()
        st = self.run_job(job, timeout=60)
        took = time.monotonic() - t0
        # The mock sends Retry-After: 1 with its 429 and 503 answers.
        self.assertGreaterEqual(took, 1.9, "Retry-After: 1 not honoured (%.2f s)" % took)
        self.assertEqual(st["lookups_failed"], "3")
        self.assertEqual(mock.lookups(), 3 * 3 + 1, "RETRIES=2 means 3 requests per key")
        stats = self.stats()
        self.assertEqual(stats.get("lookup_requests"), 10)
        self.assertEqual(stats.get("lookup_errors"), 3)
        self.assertEqual(stats.get("lookups"), 4)
        self.assert_rows(self.workbook(self.result_bytes(st)).active, job["columns"], rows,
                         lookup_key="a", failed_keys={"R-1", "T-1", "E-1"})

    def test_flaky_service_all_keys_recovered_by_retries(self):
        mock = self.start_mock("--drop-rate", "0.2", "--error-rate", "0.2", "--seed", "7",
                               latency_ms=20)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=8)
        rows = [{"a": "FLAKY-%02d" % i} for i in range(30)]
        job = self.lookup_job("flaky", rows, "fail")
        st = self.run_job(job, timeout=90)
        self.assertEqual(st["lookups_failed"], "0")
        self.assert_rows(self.workbook(self.result_bytes(st)).active, job["columns"], rows,
                         lookup_key="a")
        self.assertGreater(mock.lookups(), 30, "no fault was injected: the test proves nothing")
        stats = self.stats()
        self.assertEqual(stats.get("lookups"), 30)
        self.assertEqual(stats.get("lookup_errors", 0), 0)

    def test_dropped_connections_every_request_counted_and_bounded(self):
        """RETRIES = N means at most N + 1 requests for a key, and lookup_requests
        counts every HTTP attempt, also when the service closes kept-alive
        connections without an answer."""
        record = os.path.join(self.tmp, "record.tsv")
        mock = self.start_mock("--drop-rate", "0.3", "--seed", "7", "--record", record,
                               latency_ms=20)
        self.start_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=1, EXPORT_POOL_SIZE=4)
        rows = [{"a": "DROP-%02d" % i} for i in range(40)]
        self.run_job(self.lookup_job("dropped", rows, "blank"), timeout=90)
        sent = mock.lookups()
        self.assertGreater(sent, 40, "no connection was dropped: the test proves nothing")
        per_key = {}
        with open(record, "rb") as f:
            for line in f:
                key = line.rstrip(b"\n").split(b"\t", 1)[1].decode()
                per_key[key] = per_key.get(key, 0) + 1
        over = {k: n for k, n in per_key.items() if n > 2}
        counted = self.stats().get("lookup_requests")
        self.assertEqual((counted, over), (sent, {}),
                         "want lookup_requests == the %d requests the service received, and "
                         "no key requested more than RETRIES + 1 = 2 times; got %s counted, "
                         "and over the bound: %r" % (sent, counted, over))

    def test_4xx_is_final(self):
        mock = self.start_mock("--fail", "N*=400", "--fail", "F*=403", "--fail", "G*=410")
        self.start_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=3)
        rows = [{"a": k} for k in ["N-1", "F-1", "G-1", "OK-1"]]
        st = self.run_job(self.lookup_job("final4xx", rows, "blank"))
        self.assertEqual(st["lookups_failed"], "3")
        self.assertEqual(mock.lookups(), 4)

    def test_request_timeout_is_retried_then_fails(self):
        mock = self.start_mock("--slow", "S*=3000")
        worker = self.start_worker(mock, EXPORT_SERVICE_TETHER_TIMEOUT_MS=300,
                                   EXPORT_SERVICE_TETHER_RETRIES=1)
        t0 = time.monotonic()
        st = self.run_job(self.lookup_job("tmo", [{"a": "S-1"}, {"a": "OK-1"}], "fail"),
                          expect="failed")
        took = time.monotonic() - t0
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertIn("S-1", st["error"])
        self.assertLess(took, 2.9, "two 300 ms attempts took %.1f s" % took)
        self.assertEqual(self.stats().get("lookup_requests"), 3,
                         "RETRIES=1: two requests for S-1, one for OK-1")
        self.assert_left_processing(worker)

    def test_connection_refused_is_retried_then_fails(self):
        port = harness.free_port()
        self.start_worker(env=self.worker_env(
            EXPORT_SERVICE_TETHER_URL="http://127.0.0.1:%d/contract/?sn={key}" % port,
            EXPORT_SERVICE_TETHER_RETRIES=2))
        st = self.run_job(self.lookup_job("refused", [{"a": "k"}], "fail"), expect="failed",
                          timeout=60)
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertEqual(self.stats().get("lookup_requests"), 3)
        self.assertEqual(self.stats().get("lookup_errors"), 1)


if __name__ == "__main__":
    harness.main()
