"""A rows_key list that breaks the rules fails the job with invalid_job
naming what is wrong (PROTOCOL.md sections 2 and 4): an element longer than
EXPORT_MAX_ROW_BYTES (default 1 MiB) names the row; a list that does not
exist names the key; a short list (its workbook built in memory, sized by
the list's bytes at the start) that grows while the job runs is named too.
The list is deleted when the job ends, and the worker goes on with the next
job. Rows that are large but within the limit cost memory by the byte, not
by the row: the worker reads and holds fewer of them at a time."""

import io
import json
import os
import sys

import openpyxl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest  # noqa: E402
from resp_proxy import RespProxy, script  # noqa: E402

COLUMNS = [{"header": "A", "field": "a"}, {"header": "N", "field": "n", "type": "integer"}]


class RowsKeyLimits(RobustTest):

    def job(self, jid, rows_key):
        return {"id": jid, "columns": COLUMNS, "rows_key": rows_key}

    def test_row_over_max_row_bytes(self):
        w = self.start_worker()
        rows_key = self.key("rows", "long")
        # Over 1 MiB in members no column reads, each short: only the size is wrong.
        long_row = {"a": "second", "n": 1}
        long_row.update(("pad%04d" % i, "x" * 1000) for i in range(1100))
        long_row = json.dumps(long_row)
        self.assertGreater(len(long_row), 1 << 20)
        self.r.rpush(rows_key, json.dumps({"a": "first", "n": 0}), long_row,
                     json.dumps({"a": "third", "n": 2}))
        st = self.run_job(self.job("long", rows_key), expect="failed", timeout=30)
        print("\n  error: %s" % st.get("error"))
        self.assertEqual(st.get("error_code"), "invalid_job", st)
        self.assertRegex(st.get("error", ""),
                         r"(?i)rows(_key)?\s*\[\s*1\s*\]|row\s*#?\s*[12]\b|element\s*#?\s*[12]\b",
                         "the error does not name the row (index 1, or the 2nd)")
        self.assertRegex(st.get("error", ""), r"(?i)EXPORT_MAX_ROW_BYTES|1048576|1 MiB|bytes",
                         "the error does not name the limit")
        self.assertEqual(self.r.exists(self.key("result", "long")), 0)
        self.assertEqual(self.r.exists(rows_key), 0, "rows_key not deleted at the job's end")
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        # A row just within the limit is fine.
        rows_key = self.key("rows", "ok")
        rows = [{"a": "y" * 1000, "n": i} for i in range(3)]
        self.r.rpush(rows_key, *[json.dumps(r) for r in rows])
        job = self.job("ok", rows_key)
        st = self.run_job(job, timeout=30)
        self.assert_workbook(st, dict(job, rows=rows))
        self.assertTrue(w.running())

    def test_missing_rows_key_list(self):
        w = self.start_worker()
        rows_key = self.key("rows", "never-pushed")
        st = self.run_job(self.job("missing", rows_key), expect="failed", timeout=30)
        print("\n  error: %s" % st.get("error"))
        self.assertEqual(st.get("error_code"), "invalid_job", st)
        self.assertIn(rows_key, st.get("error", ""), "the error does not name the key")
        self.assertEqual(self.r.exists(self.key("result", "missing")), 0)
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        self.run_job({"id": "next", "columns": COLUMNS, "rows": [{"a": "z", "n": 1}]})
        self.assertTrue(w.running())

    def test_short_list_that_grows_while_the_job_runs(self):
        # The list's bytes are measured as the job starts; its first read is
        # held back by the proxy while an element grows 100-fold. The rows
        # the workbook in memory was sized for cannot turn into more.
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = RespProxy(port)
        self._at_end.append(proxy.stop)
        held = proxy.delay(script("rows"), 1.5, times=1)
        w = self.start_worker(EXPORT_REDIS_URL=proxy.url())
        rows_key = self.key("rows", "grows")
        self.r.rpush(rows_key, *[json.dumps({"a": "row %d" % i, "n": i}) for i in range(5)])
        self.enqueue(self.job("grows", rows_key))
        self.wait_until("the first read of the rows is held", lambda: held.hits, timeout=20)
        self.r.lset(rows_key, 3, json.dumps({"a": "x" * 10000, "n": 3}))
        st = self.wait_state("grows", timeout=30)
        print("\n  error: %s" % st.get("error"))
        self.assertEqual(st.get("state"), "failed", st)
        self.assertEqual(st.get("error_code"), "invalid_job", st)
        self.assertIn("changed while the job ran", st.get("error", ""))
        self.assertIn(rows_key, st.get("error", ""))
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()
        self.assertEqual(self.r.exists(rows_key), 0, "the list outlived its job")
        # A list left alone runs whole.
        self.r.rpush(rows_key, *[json.dumps({"a": "row %d" % i, "n": i}) for i in range(5)])
        self.run_job(self.job("grows-again", rows_key))
        self.assertTrue(w.running())

    def test_wide_rows_stay_within_bounded_memory(self):
        # 300 rows of 240 KB (8 cells of 30,000 characters): 72 MB of list.
        # Read 1,000 rows at a time, or held 4,096 rows ahead of the writer,
        # they would take over 150 MB; batches and the lookup window that end
        # by bytes keep the worker far below that.
        w = self.start_worker(self.start_mock())
        cells = [{"header": "C%d" % c, "field": "c%d" % c} for c in range(8)]
        rows = [dict({"k": "W%04d" % i}, **{"c%d" % c: chr(97 + (i + c) % 26) * 30000
                                            for c in range(8)}) for i in range(300)]
        jobs = [{"id": "wide", "columns": cells},
                {"id": "wide-lookups", "lookup": {"service": "tether", "key": "k"},
                 "columns": [{"header": "K", "field": "k"},
                             {"header": "Name", "lookup": "/name"}] + cells}]
        for job in jobs:
            rows_key = self.key("rows", job["id"])
            for i in range(0, len(rows), 50):
                self.r.rpush(rows_key, *[json.dumps(r) for r in rows[i:i + 50]])
            st = self.run_job(dict(job, rows_key=rows_key), timeout=120)
            self.assertEqual(st.get("rows_written"), "300", st)
            book = openpyxl.load_workbook(io.BytesIO(self.r.get(st["result_key"])),
                                          read_only=True)
            got = [[c.value for c in row] for row in book.worksheets[0].iter_rows(min_row=2,
                                                                                 max_row=3)]
            at = len(job["columns"]) - 8
            self.assertEqual(got[1][at:], [rows[1]["c%d" % c] for c in range(8)])
            if at:
                self.assertEqual(got[1][0], "W0001")
                self.assertTrue(str(got[1][1]).startswith("Customer-"), got[1][:2])
        peak = harness.proc_status_bytes(w.pid, "VmHWM")
        print("\n  peak RSS: %.1f MiB" % (peak / 1048576.0))
        if not os.environ.get("EXW_SANITIZE"):  # sanitizers keep freed memory aside
            self.assertLess(peak, 64 << 20)
        self.assertTrue(w.running())


if __name__ == "__main__":
    harness.main()
