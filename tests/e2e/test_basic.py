"""A whole export as PROTOCOL.md section 2 describes it, checked cell by cell,
with its status hash, TTLs, counters, events and the lookup service's view."""

import base64
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest, sha256  # noqa: E402

NROWS = 100
NKEYS = 80  # rows share keys: each key is looked up once

COLUMNS = [
    {"header": "Contract SN", "field": "sn", "width": 14},
    {"header": "Customer", "field": "customer"},
    {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00", "width": 12},
    {"header": "Signed", "field": "signed_on", "type": "date", "format": "yyyy-mm-dd"},
    {"header": "Discount share", "lookup": "/discount/ratio", "type": "number",
     "format": "0.00%"},
    {"header": "Units", "field": "units", "type": "integer"},
    {"header": "Active", "field": "active", "type": "boolean"},
    {"header": "Created", "field": "created", "type": "datetime"},
    {"header": "Name", "lookup": "/name", "width": 20},
    {"header": "Missing", "lookup": "/nope", "type": "number"},
    {"header": "Note", "lookup": "/note"},
    {"header": "Score", "lookup": "/score", "type": "integer"},
    {"header": "Customer since", "lookup": "/signed_on", "type": "date"},
    {"header": "Customer active", "lookup": "/active", "type": "boolean"},
]

AMOUNTS = [1200.5, 0, -3.25, 1000000, 0.1, 12345678.91, 7, 99.99]
DATES = ["2026-01-02", "2024-02-29", "1999-12-31", "2026-11-25", "1970-01-01"]
DATETIMES = [
    "2026-03-04T05:06:07Z",
    "2026-03-04T05:06:07+02:00",          # 03:06:07 UTC
    "2026-03-04T05:06:07.123456789Z",     # kept to the millisecond
    "2026-03-04T23:30:00-01:30",          # next day 01:00 UTC
    "2026-12-31T23:59:59.5",              # no zone: UTC
    "2026-03-04T00:30:00+05:45",          # previous day 18:45 UTC
    "2000-02-29T12:00:00.001+00:00",
]
CUSTOMERS = ["ACME Ltd", "Globex", "Initech GmbH", "Soylent & Co", None, "Umbrella <Corp>"]


def make_rows():
    rows = []
    for i in range(NROWS):
        row = {
            "sn": "C-%04d" % (i % NKEYS),
            "customer": CUSTOMERS[i % len(CUSTOMERS)],
            "amount": AMOUNTS[i % len(AMOUNTS)],
            "signed_on": DATES[i % len(DATES)],
            "units": (i * 1000 - 7) * (-1 if i % 3 == 0 else 1),
            "active": i % 2 == 0,
            "created": DATETIMES[i % len(DATETIMES)],
        }
        if row["customer"] is None:
            del row["customer"]  # absent: an empty cell
        if i % 10 == 9:
            row["active"] = None  # null: an empty cell
        rows.append(row)
    return rows


def make_job(jid, result_ttl=600):
    job = {
        "id": jid,
        "filename": "contracts-2026-11.xlsx",
        "sheet": "Contracts",
        "lookup": {"service": "tether", "key": "sn"},
        "columns": COLUMNS,
        "rows": make_rows(),
        "on_lookup_error": "fail",
        "some_future_member": {"ignored": [1, 2, 3]},  # unknown members are ignored
    }
    if result_ttl is not None:
        job["result_ttl"] = result_ttl
    return job


class BasicExport(E2ETest):

    def test_contract_export(self):
        mock = self.start_mock(latency_ms=300)
        worker = self.start_worker(mock, EXPORT_POOL_SIZE=8)
        jid = "exp-20261125-0001"
        job = make_job(jid, result_ttl=600)
        stats0 = self.stats()
        events = harness.Events(self.r, self.key("events"))  # before enqueueing
        t0 = harness.now_ms()
        hsets0 = self.command_calls("hset")
        self.enqueue(job)
        st = self.wait_state(jid, timeout=60)
        hsets = self.command_calls("hset") - hsets0 - 1  # less the enqueue's own
        time.sleep(0.3)  # let the last events arrive
        events.stop()
        self.assertEqual(st["state"], "succeeded", st)

        # The workbook.
        data = self.result_bytes(st)
        wb = self.workbook(data)
        self.assertEqual(wb.sheetnames, ["Contracts"])
        ws = wb["Contracts"]
        self.assertEqual(ws.max_row, NROWS + 1)
        self.assertEqual(ws.max_column, len(COLUMNS))
        for j, col in enumerate(COLUMNS):
            cell = ws.cell(row=1, column=j + 1)
            self.assert_cell(cell, col["header"], "(header)")
            self.assertTrue(cell.font.b, "header %s is not bold" % cell.coordinate)
        self.assertEqual(ws.freeze_panes, "A2")
        self.assertEqual(ws.auto_filter.ref, "A1:N%d" % (NROWS + 1))
        for letter, width in (("A", 14), ("C", 12), ("I", 20)):
            got = ws.column_dimensions[letter].width
            self.assertTrue(width <= got <= width + 1,
                            "column %s width %r, want %d (+ Excel's padding)"
                            % (letter, got, width))
        self.assert_rows(ws, COLUMNS, job["rows"], lookup_key="sn")
        formats = {"C": "#,##0.00", "D": "yyyy-mm-dd", "E": "0.00%",
                   "H": "yyyy-mm-dd hh:mm:ss", "M": "yyyy-mm-dd"}
        for r in range(2, NROWS + 2):
            for letter, fmt in formats.items():
                cell = ws["%s%d" % (letter, r)]
                if cell.value is not None:
                    self.assertEqual(cell.number_format, fmt, cell.coordinate)

        # The status hash.
        ids = {row["sn"] for row in job["rows"]}
        self.assertEqual(len(ids), NKEYS)
        self.assertEqual(st["progress"], "100")
        self.assertEqual(st["rows_total"], str(NROWS))
        self.assertEqual(st["rows_written"], str(NROWS))
        self.assertEqual(st["lookups_total"], str(NKEYS))
        self.assertEqual(st["lookups_done"], str(NKEYS))
        self.assertEqual(st["lookups_failed"], "0")
        self.assertEqual(st["attempts"], "1")
        self.assertEqual(st["worker"], worker.id)
        for f in ("queued_at", "started_at", "finished_at", "updated_at"):
            self.assertRegex(st.get(f, ""), r"^\d{13}$", f)
        q, s, f, u = (int(st[k]) for k in ("queued_at", "started_at", "finished_at",
                                           "updated_at"))
        self.assertGreaterEqual(q, t0 - 1000)
        self.assertTrue(q <= s <= f <= u, "times out of order: %r" % st)
        self.assertLessEqual(u, harness.now_ms())
        self.assertEqual(st["result_key"], self.key("result", jid))
        self.assertEqual(st["result_bytes"], str(len(data)))
        self.assertEqual(st["result_sha256"], sha256(data))
        self.assertEqual(st["filename"], "contracts-2026-11.xlsx")
        self.assertNotIn("error_code", st)
        for k in (self.key("job", jid), self.key("result", jid)):
            ttl = self.r.ttl(k)
            self.assertTrue(0 < ttl <= 600, "TTL of %s is %d, want (0, 600]" % (k, ttl))

        # Progress is written a few times a second, never once per lookup: the job
        # takes about 3 s (10 rounds of 300 ms) for 80 lookups.
        self.assertLess(hsets, 50, "%d HSETs for a job of 80 lookups" % hsets)

        # Queues and lists.
        self.assert_left_processing(worker)
        self.assertEqual(self.r.llen(self.key("queue")), 0)

        # The lookup service saw each distinct key once.
        self.assertEqual(mock.lookups(), NKEYS)

        # Counters.
        stats = self.stats()
        self.assertEqual(stats.get("jobs_succeeded", 0) - stats0.get("jobs_succeeded", 0), 1)
        self.assertEqual(stats.get("lookups", 0) - stats0.get("lookups", 0), NKEYS)
        self.assertEqual(stats.get("lookup_requests", 0) - stats0.get("lookup_requests", 0),
                         NKEYS)
        self.assertEqual(stats.get("bytes_out", 0) - stats0.get("bytes_out", 0), len(data))
        for k in ("jobs_failed", "jobs_cancelled", "jobs_dead", "lookup_errors"):
            self.assertEqual(stats.get(k, 0), 0, k)

        # Events.
        msgs = []
        for t, raw in events.messages:
            m = json.loads(raw)
            self.assertIsInstance(m, dict, raw)
            for f in ("id", "state", "progress"):
                self.assertIn(f, m, raw)
            self.assertIsInstance(m["progress"], int, raw)
            self.assertTrue(0 <= m["progress"] <= 100, raw)
            if m["id"] == jid:
                msgs.append((t, m))
        self.assertTrue(msgs, "no event for %s" % jid)
        self.assertEqual(msgs[-1][1]["state"], "succeeded", msgs[-1])
        self.assertEqual(msgs[-1][1]["progress"], 100, msgs[-1])
        self.assertIn("running", [m["state"] for _, m in msgs])
        progress = [m["progress"] for _, m in msgs if m["state"] == "running"]
        self.assertEqual(progress, sorted(progress), "progress went backwards")
        times = [t for t, _ in msgs]
        worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
        self.assertLessEqual(worst, 13, "%d events for one job within one second" % worst)

    def test_default_result_ttl_from_config(self):
        mock = self.start_mock(latency_ms=0)
        worker = self.start_worker(mock, EXPORT_RESULT_TTL=1234)
        job = make_job("ttl-default", result_ttl=None)
        job["rows"] = job["rows"][:5]
        st = self.run_job(job)
        for k in (self.key("job", job["id"]), st["result_key"]):
            ttl = self.r.ttl(k)
            self.assertTrue(1234 - 60 < ttl <= 1234, "TTL of %s is %d, want ~1234" % (k, ttl))
        self.assert_rows(self.workbook(self.result_bytes(st)).active, COLUMNS, job["rows"],
                         lookup_key="sn")
        self.assert_left_processing(worker)

    def test_defaults_filename_sheet(self):
        mock = self.start_mock()
        self.start_worker(mock)
        job = {"id": "defaults.1_a:b-c", "columns": [{"header": "N", "field": "n",
                                                      "type": "integer"}],
               "rows": [{"n": i} for i in range(3)]}
        st = self.run_job(job)
        self.assertEqual(st["filename"], "defaults.1_a:b-c.xlsx")
        wb = self.workbook(self.result_bytes(st))
        self.assertEqual(wb.sheetnames, ["Sheet1"])
        self.assert_rows(wb["Sheet1"], job["columns"], job["rows"])
        self.assertEqual(st["lookups_total"], "0")
        ttl = self.r.ttl(st["result_key"])
        self.assertTrue(86400 - 60 < ttl <= 86400, "default TTL %d, want 86400" % ttl)
        self.assertEqual(mock.lookups(), 0)

    def test_without_a_status_hash_from_the_backend(self):
        self.start_worker()
        job = {"id": "no-status", "columns": [{"header": "A", "field": "a"}],
               "rows": [{"a": "x"}]}
        self.enqueue(job, status=False)
        st = self.wait_state("no-status")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["attempts"], "1")
        self.assertEqual(st["result_sha256"], sha256(self.result_bytes(st)))

    def test_small_workbook_over_one_upload_chunk(self):
        """A workbook small enough to be made in memory (500 cells, 2 MB of
        text) whose zip is over one upload chunk (1 MiB): it is uploaded in
        chunks from memory, whole and with the right hash."""
        self.start_worker()
        rnd = random.Random(8)
        rows = [{"t": base64.b64encode(rnd.randbytes(3000)).decode()} for _ in range(500)]
        job = {"id": "memory-chunks", "columns": [{"header": "T", "field": "t"}], "rows": rows}
        st = self.run_job(job)
        data = self.result_bytes(st)
        self.assertGreater(len(data), 1 << 20)
        self.assertEqual(st["result_bytes"], str(len(data)))
        self.assertEqual(st["result_sha256"], sha256(data))
        cells = harness.raw_cells(data)
        self.assertEqual([cells["A%d" % (i + 2)][2] for i in range(len(rows))],
                         [row["t"] for row in rows])

    def test_empty_rows(self):
        self.start_worker()
        job = {"id": "empty", "columns": [{"header": "A", "field": "a"}], "rows": []}
        st = self.run_job(job)
        ws = self.workbook(self.result_bytes(st)).active
        self.assertEqual(ws.max_row, 1)
        self.assertEqual(ws["A1"].value, "A")
        self.assertEqual(st["rows_total"], "0")
        self.assertEqual(st["rows_written"], "0")
        self.assertEqual(st["progress"], "100")

    def test_service_auth_from_file_is_sent_and_never_logged(self):
        secret = "Bearer s3cret-Tok3n-%s" % self.prefix[-8:]
        mock = self.start_mock("--auth", secret)
        auth_file = os.path.join(self.tmp, "auth")
        with open(auth_file, "w") as f:
            f.write(secret + "\n")  # the trailing newline is removed
        worker = self.start_worker(mock, EXPORT_SERVICE_TETHER_AUTH_FILE=auth_file,
                                   EXPORT_LOG_LEVEL="debug")
        job = make_job("auth-file")
        job["rows"] = job["rows"][:10]
        st = self.run_job(job)
        self.assert_rows(self.workbook(self.result_bytes(st)).active, COLUMNS, job["rows"],
                         lookup_key="sn")
        # The same with the value in the environment, and without it: 401 is final.
        w2 = self.start_worker(mock, EXPORT_SERVICE_TETHER_AUTH=secret, EXPORT_LOG_LEVEL="debug")
        worker.stop()
        job = make_job("auth-env")
        job["rows"] = job["rows"][:3]
        self.run_job(job)
        w3 = self.start_worker(mock, EXPORT_LOG_LEVEL="debug")
        w2.stop()
        job = make_job("auth-none")
        job["rows"] = job["rows"][:3]
        st = self.run_job(job, expect="failed")
        self.assertEqual(st["error_code"], "lookup_failed", st)
        w3.stop()
        for w in (worker, w2, w3):
            self.assertNotIn("s3cret-Tok3n", w.log(), "worker %s logged the secret" % w.id)


if __name__ == "__main__":
    harness.main()
