"""An inline document costs the worker at most about twice its size on top
of its fixed working set (PROTOCOL.md section 4, guarantees). The document
is held once while the job runs; the take reads it through hiredis's buffer
(given back at once), and the start and end scripts carry it to Redis.
Those scripts were once sent through hiredis's formatting, which copies a
command twice on its way out: three times the document at those moments.
They are now written to the socket from the document itself (redis.c,
command_argv)."""

import io
import json
import os
import sys

import openpyxl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest  # noqa: E402

TYPES = [None, "number", "integer", "date", "boolean"]
COLUMNS = [dict({"header": "C%d" % c, "field": "f%d" % c},
                **({"type": TYPES[c % 5]} if TYPES[c % 5] else {})) for c in range(10)]


def row(i):
    return {"f%d" % c: ["s%d" % i, i * 0.25, i + c, "2026-%02d-%02d" % (1 + i % 12, 1 + i % 28),
                        i % 2 == 0][c % 5] for c in range(10)}


class InlineMemory(RobustTest):

    def test_a_large_inline_document_costs_at_most_twice_its_size(self):
        w = self.start_worker()
        # The fixed working set: the worker after a small job.
        self.run_job({"id": "small", "columns": COLUMNS, "rows": [row(i) for i in range(10)]})
        base = harness.proc_status_bytes(w.pid, "VmHWM")
        n = harness.scaled(150000)
        doc = {"id": "large", "columns": COLUMNS, "rows": [row(i) for i in range(n)]}
        size = len(json.dumps(doc))
        st = self.run_job(doc, timeout=120)
        self.assertEqual(st.get("rows_written"), str(n), st)
        book = openpyxl.load_workbook(io.BytesIO(self.r.get(st["result_key"])), read_only=True)
        got = [c.value for c in next(book.worksheets[0].iter_rows(min_row=n + 1, max_row=n + 1))]
        self.assertEqual(got[:3], ["s%d" % (n - 1), (n - 1) * 0.25, n - 1 + 2])
        peak = harness.proc_status_bytes(w.pid, "VmHWM")
        print("\n  document %.1f MiB; peak %.1f MiB over a base of %.1f MiB (%.2f x the document)"
              % (size / 1048576.0, peak / 1048576.0, base / 1048576.0, (peak - base) / size))
        if not os.environ.get("EXW_SANITIZE"):  # sanitizers keep freed memory aside
            self.assertLess(peak - base, 2.25 * size)
        self.assertTrue(w.running())


if __name__ == "__main__":
    harness.main()
