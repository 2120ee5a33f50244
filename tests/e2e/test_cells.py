"""Cell values: text is never a formula, numbers in string columns, integer
precision, empty cells, unicode, row order and lookup keys that need escaping."""

import json
import os
import re
import sys
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest, mock_body  # noqa: E402

FORMULA_LIKE = ["=1+2", "+SUM(A1)", "-3", "@cmd", "\tx", "\rx", "=HYPERLINK(\"http://x\")",
                "=", "'quoted", "0042", "1e5", "TRUE", "  padded  ", "a\nb", "x\r\ny",
                "<b>&amp;</b>", "DDE|cmd!A0"]


def recorded_targets(path):
    """The raw request targets the mock's --record file holds."""
    with open(path, "rb") as f:
        return [line.split(b"\t", 1)[0].decode("ascii") for line in f if line.strip()]


def normalize_pct(target):
    """Upper-cases percent-encoded hex digits (RFC 3986: equivalent either way)."""
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group(0).upper(), target)


class Cells(E2ETest):

    def export(self, columns, rows, jid="cells", extra=None, raw_rows=None, timeout=30):
        job = {"id": jid, "sheet": "S", "columns": columns, "rows": rows}
        job.update(extra or {})
        if raw_rows is not None:
            # Rows as literal JSON text, to control exactly how numbers are written.
            text = json.dumps(job).replace('"rows": []', '"rows": [%s]' % ", ".join(raw_rows))
            self.enqueue(text.encode(), jid=jid)
        else:
            self.enqueue(job)
        st = self.wait_state(jid, timeout=timeout)
        self.assertEqual(st["state"], "succeeded", st)
        data = self.result_bytes(st)
        return st, data, self.workbook(data)["S"]

    def test_text_is_never_a_formula(self):
        self.start_worker()
        cols = [{"header": "Text", "field": "t"}, {"header": "=HEADER()", "field": "u"}]
        rows = [{"t": v, "u": v} for v in FORMULA_LIKE]
        st, data, ws = self.export(cols, rows)
        raw = harness.raw_cells(data)
        self.assertEqual(raw["B1"][2], "=HEADER()")
        self.assertFalse(raw["B1"][1], "the header B1 was written as a formula")
        for i, v in enumerate(FORMULA_LIKE):
            for letter in "AB":
                coord = "%s%d" % (letter, i + 2)
                t, has_formula, text = raw[coord]
                self.assertFalse(has_formula, "%s %r was written as a formula" % (coord, v))
                self.assertIn(t, ("s", "inlineStr", "str"), "%s %r has type %r" % (coord, v, t))
                self.assertEqual(text, v, "%s: raw text differs" % coord)
                cell = ws[coord]
                self.assertEqual(cell.data_type, "s", "%s %r" % (coord, v))
                if "\r" not in v:  # openpyxl leaves Excel's _x000D_ escape undecoded
                    self.assertEqual(cell.value, v, coord)

    def test_text_that_looks_like_an_escape_or_holds_control_characters(self):
        self.start_worker()
        values = ["_x0041_", "a_x000D_b", "_x005F_", "\x01ctl\x1f", "bell\x07", "\x0b\x0c"]
        cols = [{"header": "T", "field": "t"}]
        st, data, ws = self.export(cols, [{"t": v} for v in values])
        raw = harness.raw_cells(data)
        for i, v in enumerate(values):
            coord = "A%d" % (i + 2)
            self.assertFalse(raw[coord][1], coord)
            self.assertEqual(raw[coord][2], v, "%s: Excel would read %r, want %r"
                             % (coord, raw[coord][2], v))

    def test_string_column_takes_numbers_and_booleans(self):
        self.start_worker()
        cols = [{"header": "V", "field": "v"}]
        cases = [("1.50", "1.5"), ("1e5", "100000"), ("100000.0", "100000"), ("true", "true"),
                 ("false", "false"), ("3", "3"), ("-17.25", "-17.25"), ("0.1", "0.1"),
                 ("0.30000000000000004", "0.30000000000000004"), ("1.0", "1"), ("-0.5", "-0.5"),
                 ("9007199254740992", "9007199254740992"), ("2.5E+3", "2500"),
                 ("123456.789", "123456.789")]
        raw_rows = ['{"v": %s}' % text for text, _ in cases]
        st, data, ws = self.export(cols, [], raw_rows=raw_rows)
        for i, (text, want) in enumerate(cases):
            self.assert_cell(ws.cell(row=i + 2, column=1), want, "(JSON %s)" % text)

    def test_integers_exact_to_2_pow_53(self):
        self.start_worker()
        values = [0, 1, -1, 2**31, -(2**31) - 1, 2**32 + 1, 12345678901, 2**53 - 1, 2**53,
                  -(2**53), 10**15 + 7]
        cols = [{"header": "I", "field": "n", "type": "integer"},
                {"header": "N", "field": "n", "type": "number"},
                {"header": "S", "field": "n"}]
        st, data, ws = self.export(cols, [{"n": v} for v in values])
        for i, v in enumerate(values):
            self.assert_cell(ws.cell(row=i + 2, column=1), v)
            self.assert_cell(ws.cell(row=i + 2, column=2), v)
            self.assert_cell(ws.cell(row=i + 2, column=3), str(v))
        # A whole number written with a fraction or exponent is still whole.
        st, data, ws = self.export(cols[:1], [], jid="cells-2",
                                   raw_rows=['{"n": 5.0}', '{"n": 1e3}', '{"n": -2E2}'])
        for i, v in enumerate([5, 1000, -200]):
            self.assert_cell(ws.cell(row=i + 2, column=1), v)

    def test_null_and_absent_are_empty(self):
        self.start_worker()
        types = ["string", "number", "integer", "boolean", "date", "datetime"]
        cols = [{"header": t, "field": t, "type": t} for t in types]
        # The last row has values: a reader sees no trace of a row of empty cells.
        rows = [{t: None for t in types}, {}, {"other": "ignored"},
                {"string": "x", "number": 1.5, "integer": 2, "boolean": False,
                 "date": "2026-01-01", "datetime": "2026-01-01T00:00:00Z"}]
        st, data, ws = self.export(cols, rows)
        self.assertEqual(ws.max_row, 5)
        self.assert_rows(ws, cols, rows)
        self.assertEqual(st["rows_written"], "4")

    def test_unicode_intact(self):
        self.start_worker()
        values = ["é", "中文", "emoji 😀🚀", "Ünïcødé – dash “quotes”", "e\u0301 combining",
                  "\u00a0nbsp", "עברית", "𝔘𝔫𝔦", "ß→SS"]
        cols = [{"header": "Tëxt ✓", "field": "t"}, {"header": "Ключ", "field": "k"}]
        rows = [{"t": v, "k": "k-%s" % v} for v in values]
        st, data, ws = self.export(cols, rows, extra={"sheet": "S"})
        self.assert_cell(ws["A1"], "Tëxt ✓")
        self.assert_cell(ws["B1"], "Ключ")
        self.assert_rows(ws, cols, rows)

    def test_unicode_sheet_name_and_filename(self):
        self.start_worker()
        job = {"id": "uni", "filename": "Données été.xlsx", "sheet": "Données 中文",
               "columns": [{"header": "A", "field": "a"}], "rows": [{"a": "1"}]}
        st = self.run_job(job)
        self.assertEqual(st["filename"], "Données été.xlsx")
        wb = self.workbook(self.result_bytes(st))
        self.assertEqual(wb.sheetnames, ["Données 中文"])

    def test_rows_in_input_order(self):
        self.start_worker()
        n = 2000
        cols = [{"header": "Seq", "field": "i", "type": "integer"},
                {"header": "Label", "field": "s"}]
        # Not sorted by any column: the order must be the input order.
        order = [(i * 7919) % n for i in range(n)]
        rows = [{"i": k, "s": "row-%05d" % k} for k in order]
        st, data, ws = self.export(cols, rows)
        got = [(r[0].value, r[1].value) for r in ws.iter_rows(min_row=2)]
        self.assertEqual(got, [(k, "row-%05d" % k) for k in order])

    def test_lookup_keys_are_escaped_into_one_query_value(self):
        record = os.path.join(self.tmp, "record.tsv")
        mock = self.start_mock("--record", record)
        self.start_worker(mock)
        keys = ["plain", "with space", "a/b", "a&b=c", "100%", "+plus+", "?q#h", "é中",
                "semi;colon", "tilde~dot.under_score-dash", "x" * 300]
        cols = [{"header": "Key", "field": "sn"},
                {"header": "Echo", "lookup": "/sn"},
                {"header": "Name", "lookup": "/name"}]
        rows = [{"sn": k} for k in keys]
        st, data, ws = self.export(cols, rows, extra={"lookup": {"service": "TETHER",
                                                                  "key": "sn"}})
        self.assert_rows(ws, cols, rows, lookup_key="sn")
        for i, k in enumerate(keys):
            self.assertEqual(ws.cell(row=i + 2, column=3).value, mock_body(k)["name"], k)
        self.assertEqual(mock.lookups(), len(keys))
        # Every byte outside A-Z a-z 0-9 - . _ ~ percent-encoded, nothing else.
        self.assertEqual(sorted(normalize_pct(t) for t in recorded_targets(record)),
                         sorted("/contract/?sn=" + quote(k, safe="") for k in keys))

    def test_lookup_key_as_one_path_segment(self):
        record = os.path.join(self.tmp, "record.tsv")
        mock = self.start_mock("--record", record)
        self.start_worker(mock, EXPORT_SERVICE_BYPATH_URL=mock.url("/contract/{key}"))
        keys = ["plain", "a/b", "../up", "with space", "q?x=1", "é"]
        cols = [{"header": "Key", "field": "k"}, {"header": "Echo", "lookup": "/sn"}]
        rows = [{"k": k} for k in keys]
        st, data, ws = self.export(cols, rows, extra={"lookup": {"service": "ByPath",
                                                                  "key": "k"}})
        self.assert_rows(ws, cols, rows, lookup_key="k")
        self.assertEqual(sorted(normalize_pct(t) for t in recorded_targets(record)),
                         sorted("/contract/" + quote(k, safe="") for k in keys))


if __name__ == "__main__":
    harness.main()
