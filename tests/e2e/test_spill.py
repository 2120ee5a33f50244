"""Lookups of a job spilled to disk and read back: with a window of two rows
(EXPORT_BATCH_ROWS=2) and 3,000 keys each named three times, far apart,
finished lookups leave memory for the spill file, and a later row naming
the same key reads its answer back instead of asking the service again:
the mock sees each key once and every cell is right."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa
from harness import E2ETest  # noqa

COLUMNS = [{"header": "SN", "field": "sn"}, {"header": "Seq", "field": "seq", "type": "integer"},
           {"header": "Name", "lookup": "/name"},
           {"header": "Ratio", "lookup": "/discount/ratio", "type": "number"}]


class Spill(E2ETest):
    def test_keys_come_back_after_spilling(self):
        mock = self.start_mock()
        self.start_worker(mock, EXPORT_BATCH_ROWS=2)
        n, k = 9000, 3000
        rows = [{"sn": "K-%05d" % (i % k), "seq": i} for i in range(n)]
        key = self.key("rows", "sp-1")
        self.r.rpush(key, *[json.dumps(x) for x in rows])
        st = self.run_job({"id": "sp-1", "sheet": "S", "columns": COLUMNS, "rows_key": key,
                           "lookup": {"service": "tether", "key": "sn"}}, timeout=120)
        self.assertEqual(st["lookups_total"], str(k))
        self.assertEqual(st["lookups_done"], str(k))
        self.assertEqual(mock.lookups(), k)
        ws = self.workbook(self.result_bytes(st))["S"]
        self.assert_rows(ws, COLUMNS, rows, lookup_key="sn")


if __name__ == "__main__":
    harness.main()
