"""Rows from a Redis list (rows_key), and sheets continued past the row limit
(EXPORT_MAX_SHEET_ROWS set small so a few rows show it)."""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402

COLUMNS = [
    {"header": "Contract SN", "field": "sn"},
    {"header": "Seq", "field": "seq", "type": "integer"},
    {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00"},
    {"header": "Signed", "field": "signed_on", "type": "date"},
    {"header": "Name", "lookup": "/name"},
]


def make_rows(n):
    return [{"sn": "C-%03d" % (i % 7), "seq": i, "amount": i * 10.25,
             "signed_on": "2026-02-%02d" % (i % 28 + 1)} for i in range(n)]


class RowsKey(E2ETest):

    def push_rows(self, key, rows):
        self.r.rpush(key, *[json.dumps(row) for row in rows])

    def check_sheets(self, data, names, rows, rows_per_sheet):
        wb = self.workbook(data)
        self.assertEqual(wb.sheetnames, names)
        for n, name in enumerate(names):
            ws = wb[name]
            part = rows[n * rows_per_sheet:(n + 1) * rows_per_sheet]
            self.assertEqual(ws.max_row, len(part) + 1, name)
            for j, col in enumerate(COLUMNS):
                cell = ws.cell(row=1, column=j + 1)
                self.assert_cell(cell, col["header"], "(header of %s)" % name)
                self.assertTrue(cell.font.b, "%s!%s not bold" % (name, cell.coordinate))
            self.assertEqual(ws.freeze_panes, "A2", name)
            self.assertEqual(ws.auto_filter.ref, "A1:E%d" % (len(part) + 1), name)
            self.assert_rows(ws, COLUMNS, part, lookup_key="sn")
        return wb

    def test_rows_from_a_list_over_four_sheets(self):
        mock = self.start_mock()
        worker = self.start_worker(mock, EXPORT_MAX_SHEET_ROWS=4)
        jid = "rk-1"
        rows = make_rows(10)
        rows_key = self.key("rows", jid)
        self.push_rows(rows_key, rows)
        job = {"id": jid, "sheet": "Contracts", "columns": COLUMNS, "rows_key": rows_key,
               "lookup": {"service": "tether", "key": "sn"}}
        st = self.run_job(job)
        self.check_sheets(self.result_bytes(st),
                          ["Contracts", "Contracts (2)", "Contracts (3)", "Contracts (4)"],
                          rows, 3)
        self.assertEqual(st["rows_total"], "10")
        self.assertEqual(st["rows_written"], "10")
        self.assertEqual(st["lookups_total"], "7")
        self.assertEqual(mock.lookups(), 7)
        self.assertEqual(self.r.exists(rows_key), 0, "the rows list was not deleted")
        self.assert_left_processing(worker)

    def test_exactly_full_sheet_needs_no_continuation(self):
        self.start_worker(self.start_mock(), EXPORT_MAX_SHEET_ROWS=4)
        rows = make_rows(3)
        job = {"id": "rk-full", "sheet": "Contracts", "columns": COLUMNS, "rows": rows,
               "lookup": {"service": "tether", "key": "sn"}}
        st = self.run_job(job)
        self.check_sheets(self.result_bytes(st), ["Contracts"], rows, 3)
        rows = make_rows(4)
        job = dict(job, id="rk-full-plus-one", rows=rows)
        st = self.run_job(job)
        self.check_sheets(self.result_bytes(st), ["Contracts", "Contracts (2)"], rows, 3)

    def test_inline_rows_continue_too(self):
        self.start_worker(self.start_mock(), EXPORT_MAX_SHEET_ROWS=4)
        rows = make_rows(7)
        job = {"id": "rk-inline", "columns": COLUMNS, "rows": rows,
               "lookup": {"service": "tether", "key": "sn"}}
        st = self.run_job(job)
        self.check_sheets(self.result_bytes(st), ["Sheet1", "Sheet1 (2)", "Sheet1 (3)"],
                          rows, 3)

    def test_long_sheet_name_is_shortened_for_its_continuations(self):
        self.start_worker(self.start_mock(), EXPORT_MAX_SHEET_ROWS=4)
        base = "Quarterly contracts 2026 Europe"
        self.assertEqual(len(base), 31)
        rows = make_rows(5)
        job = {"id": "rk-long", "sheet": base, "columns": COLUMNS, "rows": rows,
               "lookup": {"service": "tether", "key": "sn"}}
        st = self.run_job(job)
        wb = self.workbook(self.result_bytes(st))
        self.assertEqual(len(wb.sheetnames), 2, wb.sheetnames)
        first, second = wb.sheetnames
        self.assertEqual(first, base)
        self.assertLessEqual(len(second), 31, second)
        self.assertTrue(second.endswith(" (2)"), second)
        self.assertTrue(base.startswith(second[:-4]), second)
        self.assertEqual(len(second), 31, "the base should keep as much as fits: %r" % second)
        self.check_sheets(self.result_bytes(st), [first, second], rows, 3)

    def test_rows_key_outside_the_prefix_is_invalid_and_left_alone(self):
        worker = self.start_worker(self.start_mock())
        outside = "not-%s:rows:x" % self.prefix
        self.outside_keys.add(outside)
        self.push_rows(outside, make_rows(2))
        job = {"id": "rk-outside", "columns": COLUMNS[:2], "rows_key": outside}
        st = self.run_job(job, expect="failed")
        self.assertEqual(st["error_code"], "invalid_job", st)
        self.assertIn("rows_key", st["error"])
        self.assertEqual(self.r.llen(outside), 2, "a list outside P: was touched")
        self.assert_left_processing(worker)
        # A key that merely starts with the prefix's text is not inside P: either.
        sneaky = self.prefix + "x:rows"
        self.outside_keys.add(sneaky)
        self.push_rows(sneaky, make_rows(2))
        st = self.run_job(dict(job, id="rk-sneaky", rows_key=sneaky), expect="failed")
        self.assertEqual(st["error_code"], "invalid_job", st)
        self.assertEqual(self.r.llen(sneaky), 2)

    def test_bad_row_in_list_fails_and_list_is_deleted(self):
        worker = self.start_worker(self.start_mock())
        rows_key = self.key("rows", "rk-bad")
        self.r.rpush(rows_key, json.dumps({"sn": "a", "seq": 1}), "not json",
                     json.dumps({"sn": "c", "seq": 3}))
        job = {"id": "rk-bad", "columns": COLUMNS[:2], "rows_key": rows_key}
        st = self.run_job(job, expect="failed")
        self.assertEqual(st["error_code"], "invalid_job", st)
        self.assertRegex(st["error"], r"\b(1|2)\b", "the error should name the row")
        self.assertEqual(self.r.exists(rows_key), 0, "the rows list was not deleted")
        self.assert_left_processing(worker)
        # A row of the wrong type in the list, too.
        self.r.rpush(rows_key, json.dumps({"sn": "a", "seq": 1}),
                     json.dumps({"sn": "b", "seq": "two"}))
        st = self.run_job(dict(job, id="rk-bad2", rows_key=rows_key), expect="failed")
        self.assertEqual(st["error_code"], "invalid_job", st)
        self.assertRegex(st["error"], "(?i)seq")
        self.assertEqual(self.r.exists(rows_key), 0)

    def test_rows_list_deleted_after_cancel_before_start(self):
        self.start_worker(self.start_mock())
        rows_key = self.key("rows", "rk-cancel")
        self.push_rows(rows_key, make_rows(3))
        self.enqueue({"id": "rk-cancel", "columns": COLUMNS[:2], "rows_key": rows_key},
                     cancel="1")
        st = self.wait_state("rk-cancel")
        self.assertEqual(st["state"], "cancelled", st)
        self.assertEqual(self.r.exists(rows_key), 0, "kept after a cancel before start")

    def test_rows_list_deleted_after_an_invalid_document(self):
        self.start_worker(self.start_mock())
        rows_key = self.key("rows", "rk-badcol")
        self.push_rows(rows_key, make_rows(3))
        st = self.run_job({"id": "rk-badcol", "columns": [{"header": "X", "field": "sn",
                                                            "type": "nubmer"}],
                           "rows_key": rows_key}, expect="failed")
        self.assertEqual(st["error_code"], "invalid_job", st)
        self.assertEqual(self.r.exists(rows_key), 0, "kept after an invalid job")

    def test_rows_list_deleted_after_lookup_failed(self):
        self.start_worker(self.start_mock())
        rows_key = self.key("rows", "rk-lookup")
        self.push_rows(rows_key, make_rows(3))
        st = self.run_job({"id": "rk-lookup", "columns": COLUMNS[:1] + [
            {"header": "Bad", "lookup": "/name", "type": "number"}],
            "lookup": {"service": "tether", "key": "sn"}, "rows_key": rows_key},
            expect="failed")
        self.assertEqual(st["error_code"], "lookup_failed", st)
        self.assertEqual(self.r.exists(rows_key), 0, "kept after lookup_failed")

    def test_rows_list_deleted_after_timeout(self):
        self.start_worker(self.start_mock(latency_ms=4000), EXPORT_JOB_TIMEOUT=1)
        rows_key = self.key("rows", "rk-timeout")
        self.push_rows(rows_key, make_rows(3))
        st = self.run_job({"id": "rk-timeout", "columns": COLUMNS, "rows_key": rows_key,
                           "lookup": {"service": "tether", "key": "sn"}}, expect="failed")
        self.assertEqual(st["error_code"], "timeout", st)
        self.assertEqual(self.r.exists(rows_key), 0, "kept after a timeout")

    def test_rows_list_deleted_when_out_of_attempts(self):
        mock = self.start_mock(latency_ms=2000)
        a = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_HEARTBEAT_TTL_MS=1000,
                              EXPORT_MAX_ATTEMPTS=1)
        rows_key = self.key("rows", "rk-doomed")
        self.push_rows(rows_key, make_rows(5))
        self.enqueue({"id": "rk-doomed", "columns": COLUMNS, "rows_key": rows_key,
                      "lookup": {"service": "tether", "key": "sn"}})
        self.wait_state("rk-doomed", ("running",), timeout=10)
        a.kill9()
        self.start_worker(mock, EXPORT_HEARTBEAT_TTL_MS=1000, EXPORT_MAX_ATTEMPTS=1)
        st = self.wait_state("rk-doomed", timeout=20)
        self.assertEqual(st.get("error_code"), "too_many_attempts", st)
        self.assertEqual(self.r.exists(rows_key), 0, "kept after too_many_attempts")

    def test_rows_list_survives_a_requeue_on_sigterm(self):
        mock = self.start_mock(latency_ms=2000)
        w1 = self.start_worker(mock, EXPORT_POOL_SIZE=1, EXPORT_SHUTDOWN_GRACE=1)
        rows_key = self.key("rows", "rk-term")
        rows = make_rows(7)
        self.push_rows(rows_key, rows)
        job = {"id": "rk-term", "sheet": "Contracts", "columns": COLUMNS, "rows_key": rows_key,
               "lookup": {"service": "tether", "key": "sn"}}
        self.enqueue(job)
        self.wait_state("rk-term", ("running",), timeout=10)
        w1.signal(signal.SIGTERM)
        self.assertEqual(w1.wait(6), 0)
        self.assertEqual(self.status("rk-term")["state"], "queued")
        self.assertEqual(self.r.llen(rows_key), len(rows), "the rows list did not survive")
        self.start_worker(mock, EXPORT_POOL_SIZE=64)
        st = self.wait_state("rk-term", timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.check_sheets(self.result_bytes(st), ["Contracts"], rows, len(rows))
        self.assertEqual(self.r.exists(rows_key), 0)

    def test_many_rows_from_a_list(self):
        self.start_worker(EXPORT_MAX_SHEET_ROWS=1001)
        rows_key = self.key("rows", "rk-many")
        cols = COLUMNS[:4]
        rows = make_rows(5000)
        pipe = self.r.pipeline()
        for i in range(0, len(rows), 1000):
            pipe.rpush(rows_key, *[json.dumps(r) for r in rows[i:i + 1000]])
        pipe.execute()
        st = self.run_job({"id": "rk-many", "columns": cols, "rows_key": rows_key}, timeout=60)
        wb = self.workbook(self.result_bytes(st))
        self.assertEqual(wb.sheetnames, ["Sheet1"] + ["Sheet1 (%d)" % i for i in range(2, 6)])
        seqs = []
        for ws in wb.worksheets:
            self.assertEqual(ws.max_row, 1001)
            seqs += [r[1].value for r in ws.iter_rows(min_row=2)]
        self.assertEqual(seqs, list(range(5000)))
        self.assertEqual(st["rows_written"], "5000")
        self.assertEqual(self.r.exists(rows_key), 0)

    def test_bad_cells_fail_as_inline_rows_do(self):
        """A rows_key job without lookups has its cells typed by the reader:
        a bad row fails the job with the text the same row gives inline, the
        rows before it written first and no later row looked at."""
        self.start_worker(EXPORT_MAX_STRING_CHARS=20)
        cols = COLUMNS[:4]
        bad = [("seq", "two"), ("seq", 1.5), ("signed_on", "2026-13-01"),
               ("sn", "x" * 21), ("amount", "ten")]
        for n, (field, value) in enumerate(bad):
            rows = make_rows(2600)
            rows[1500][field] = value
            texts = [json.dumps(r) for r in rows]
            texts[2200] = "not json"  # a later bad row must not be the one named
            rows_key = self.key("rows", "rk-cells-%d" % n)
            self.r.rpush(rows_key, *texts)
            st = self.run_job({"id": "rk-cells-%d" % n, "columns": cols, "rows_key": rows_key},
                              expect="failed")
            inline = self.run_job({"id": "in-cells-%d" % n, "columns": cols,
                                   "rows": rows[:1501]}, expect="failed")
            self.assertEqual(st["error_code"], "invalid_job", st)
            self.assertIn("rows[1500].%s" % field, st["error"])
            self.assertEqual(st["error"], inline["error"])
            self.assertEqual(self.r.exists(rows_key), 0)

    def test_wide_rows_from_a_list(self):
        """Rows of 2,100 columns come in batches of a few rows each."""
        self.start_worker()
        cols = [{"header": "C%d" % j, "field": "f%d" % j,
                 "type": "integer" if j % 2 else "string"} for j in range(2100)]
        rows = [{"f%d" % j: (i * 10000 + j if j % 2 else "r%d c%d" % (i, j))
                 for j in range(2100)} for i in range(23)]
        rows_key = self.key("rows", "rk-wide")
        self.push_rows(rows_key, rows)
        st = self.run_job({"id": "rk-wide", "columns": cols, "rows_key": rows_key}, timeout=60)
        ws = self.workbook(self.result_bytes(st)).active
        self.assertEqual(ws.max_row, 24)
        for i, values in enumerate(ws.iter_rows(min_row=2, values_only=True)):
            self.assertEqual(list(values), [rows[i]["f%d" % j] for j in range(2100)], i)


if __name__ == "__main__":
    harness.main()
