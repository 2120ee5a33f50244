"""docs/job.schema.json against the job documents the project knows.

The schema is checked against the draft 2020-12 meta-schema, then with
Debian's python3-jsonschema (Draft202012Validator):

- every good document validates: the examples of docs/protocol.md, of
  PROTOCOL.md (when it is found beside the repository, as ../shared/PROTOCOL.md,
  or at $EXW_PROTOCOL_MD) and of the schema itself, the demo's job
  (scripts/demo_client.py), the good job of test_corpus.py, the good side of each
  corpus limit, the fuzz seeds that are jobs, and tests/corpus/good/ if it exists;
- every document of the bad corpus (tests/corpus/bad/) is refused, either
  before the schema (it is not JSON text: NOT_JSON) or by it, except exactly
  the documents of SCHEMA_CANNOT_EXPRESS, each with the reason the schema cannot
  see what is wrong. Both lists are compared with what happens, so neither can
  go stale: a document that moves from one group to another fails the test.

No worker and no Redis are needed. ${PREFIX} in the corpus becomes "export",
the default prefix, as a backend of a default deployment would write it.
"""

import json
import os
import re
import sys
import threading
import unittest

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import corpus_util  # noqa: E402
import harness  # noqa: E402

SCHEMA_PATH = os.path.join(ROOT, "docs", "job.schema.json")
PREFIX = "export"

# Bad documents that are not JSON text (RFC 8259): a strict parser refuses them,
# so no schema is ever applied. A single leading BOM is skipped first, as the
# worker skips it (010 ends failed under its id for its sheet, and is judged by
# the schema).
NOT_JSON = {
    "001-empty.bin": "empty",
    "002-whitespace-only.json": "whitespace only",
    "008-bom-only.json": "a BOM and nothing else",
    "009-bom-inside-document.json": "a BOM between members",
    "011-trailing-garbage.json": "text after the object",
    "012-two-objects.json": "two objects",
    "013-truncated.json": "truncated",
    "014-trailing-comma.json": "a trailing comma",
    "015-single-quotes.json": "single quotes",
    "016-comment.json": "a comment",
    "017-nan-literal.json": "NaN is not a JSON literal",
    "018-raw-control-char-in-string.bin": "a raw control character in a string",
    "019-raw-nul-byte.bin": "a raw NUL byte in a string",
    "020-plain-text.json": "plain text",
    "037-id-invalid-utf8.bin": "not UTF-8",
    "048-invalid-utf8-in-value.bin": "not UTF-8",
    "049-invalid-utf8-in-key.bin": "not UTF-8",
    "050-invalid-utf8-in-header.bin": "not UTF-8",
    "051-utf8-truncated-3-byte.bin": "not UTF-8",
    "052-utf8-truncated-at-end.bin": "not UTF-8",
    "053-utf8-overlong-2-byte-slash.bin": "not UTF-8",
    "054-utf8-overlong-3-byte.bin": "not UTF-8",
    "055-utf8-overlong-4-byte.bin": "not UTF-8",
    "056-utf8-overlong-nul.bin": "not UTF-8",
    "057-utf8-encoded-high-surrogate.bin": "not UTF-8",
    "058-utf8-encoded-low-surrogate.bin": "not UTF-8",
    "059-utf8-beyond-10ffff.bin": "not UTF-8",
    "060-utf8-lone-continuation.bin": "not UTF-8",
    "061-utf8-byte-ff.bin": "not UTF-8",
    "062-utf8-5-byte-form.bin": "not UTF-8",
    "063-utf8-latin1-document.bin": "not UTF-8",
}

# Bad documents that are JSON and that the schema accepts: what is wrong with
# each is beyond what a JSON Schema can state (see the schema's description).
SCHEMA_CANNOT_EXPRESS = {
    "042-id-too-large-doc-escaped-id.json":
        "over EXPORT_MAX_JOB_BYTES: the size of the text, and a setting of the worker",
    "043-too-large.json":
        "over EXPORT_MAX_JOB_BYTES: the size of the text, and a setting of the worker",
    "044-nesting-33-arrays.json": "nesting depth (in an unknown member, which may hold anything)",
    "045-nesting-33-objects.json": "nesting depth (in an unknown member, which may hold anything)",
    "047-nesting-10000.json": "nesting depth (in an unknown member, which may hold anything)",
    "064-lone-high-surrogate-escape.json":
        "an unpaired surrogate escape: the parser decodes it to a string like any other",
    "065-lone-low-surrogate-escape.json":
        "an unpaired surrogate escape: the parser decodes it to a string like any other",
    "066-reversed-surrogate-pair-escape.json":
        "unpaired surrogate escapes: the parser decodes them to a string like any other",
    "067-nul-escape-in-value.json": "a \\u0000 escape, refused anywhere in the document",
    "068-nul-escape-in-key.json":
        "a \\u0000 escape in the name of an unknown member, refused anywhere in the document",
    "069-number-1e999.json": "a number beyond a double's range (the parser makes it infinity)",
    "070-number-minus-1e999.json":
        "a number beyond a double's range, in an unknown member",
    "071-number-400-digits.json": "a number beyond a double's range (the parser makes it an int)",
    "099-format-128-bytes-43-chars.json":
        "format over 127 bytes in 43 characters: the schema counts characters",
    "124-lookup-unknown-service.json": "which services are configured is the worker's business",
    "127-lookup-key-value-true.json":
        "the row member lookup.key names must be a string or a number: depends on lookup.key",
    "137-rows-over-max-rows.json":
        "1,001 rows is over the corpus worker's EXPORT_MAX_ROWS of 1,000, a setting",
    "138-rows-key-not-under-prefix.json": "whether rows_key begins with P: depends on the prefix",
    "141-rows-key-prefix-without-colon.json":
        "whether rows_key begins with P: depends on the prefix",
    "177-string-given-32768-chars.json":
        "text over 32,767 characters: only in a member a column names, so depends on the columns",
    "178-string-given-32768-multibyte-chars.json":
        "text over 32,767 characters: only in a member a column names, so depends on the columns",
    "179-number-given-string-12.json": "a row value of the wrong type for its column",
    "180-number-given-true.json": "a row value of the wrong type for its column",
    "183-integer-given-1.5.json": "a row value of the wrong type for its column",
    "184-integer-given-2pow53-plus-2.json":
        "an integer column's 2^53 bound, judged by the digits, depends on the column's type",
    "185-integer-given-1e300.json":
        "an integer column's 2^53 bound, judged by the digits, depends on the column's type",
    "186-integer-given-string.json": "a row value of the wrong type for its column",
    "187-integer-given-true.json": "a row value of the wrong type for its column",
    "188-boolean-given-string-true.json": "a row value of the wrong type for its column",
    "189-boolean-given-number-1.json": "a row value of the wrong type for its column",
    "191-date-given-2026-02-30.json": "a date column's calendar rules, by the column's type",
    "192-date-given-26-01-01.json": "a date column's syntax, by the column's type",
    "193-date-given-datetime.json": "a date column's syntax, by the column's type",
    "194-date-given-year-1899.json": "a date column's years 1900 to 9999, by the column's type",
    "195-date-given-number.json": "a row value of the wrong type for its column",
    "196-date-given-true.json": "a row value of the wrong type for its column",
    "197-datetime-given-offset-plus-25.json": "a datetime column's syntax, by the column's type",
    "198-datetime-given-10-fraction-digits.json":
        "a datetime column's syntax, by the column's type",
    "199-datetime-given-empty-fraction.json": "a datetime column's syntax, by the column's type",
    "200-datetime-given-date-only.json": "a datetime column's syntax, by the column's type",
    "201-datetime-given-space-separator.json": "a datetime column's syntax, by the column's type",
    "202-datetime-given-hour-24.json": "a datetime column's time of day, by the column's type",
    "203-datetime-given-leap-second.json": "a datetime column's time of day, by the column's type",
    "204-datetime-given-year-10000-in-utc.json":
        "a datetime column's year after conversion to UTC, by the column's type",
    "205-datetime-given-number.json": "a row value of the wrong type for its column",
    "209-boolean-given-string-empty.json": "a row value of the wrong type for its column",
    "212-datetime-given-true.json": "a row value of the wrong type for its column",
    "217-integer-given-2pow53-plus-1.json":
        "an integer column's 2^53 bound, judged by the digits (a double cannot tell "
        "2^53 + 1 from 2^53)",
    "218-integer-given-1.0000000000000001.json":
        "whole by the digits: a double reads 1.0000000000000001 as 1.0, and the rule depends "
        "on the column's type",
    "219-lookup-key-40000-chars.json":
        "a lookup key over 32,767 characters: depends on lookup.key",
    "220-number-just-past-a-double.json":
        "a number just beyond a double's range (the parser makes it infinity)",
}


def worker_error_path(words):
    """The member that the worker's error (expected.json's first word) names,
    as a JSON Schema error path: "columns[1].lookup" is ["columns", 1, "lookup"];
    None when the error names no member of the document."""
    if not words:
        return None
    m = re.match(r"(id|filename|sheet|lookup|columns|rows_key|rows|on_lookup_error|result_ttl)"
                 r"((?:\[\d+\]|\.[A-Za-z_]+)*)", words[0])
    if m is None:
        return None
    path = [m.group(1)]
    for index, name in re.findall(r"\[(\d+)\]|\.([A-Za-z_]+)", m.group(2)):
        path.append(int(index) if index else name)
    return path


class NotJSON(Exception):
    pass


def _refuse_constant(name):
    raise NotJSON("%s is not a JSON literal" % name)


def parse_strict(data):
    """The JSON value of @data, a job document's bytes, read as the worker reads
    them: one leading BOM skipped, then UTF-8 and RFC 8259 JSON strictly (no
    NaN or Infinity, no raw control characters). NotJSON when it is not JSON
    text. Duplicate members: Python keeps the last (the worker the first)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotJSON("not UTF-8: %s" % e)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as e:
        raise NotJSON(str(e))


def in_deep_thread(fn):
    """fn() on a thread with a large stack and recursion limit: the corpus nests
    arrays 50,000 levels deep, and a validation error prints its instance."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    old_limit = sys.getrecursionlimit()
    old_stack = threading.stack_size(512 << 20)
    sys.setrecursionlimit(max(old_limit, 300000))
    try:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in out:
        raise out["error"]
    return out["value"]


def load_schema():
    with open(SCHEMA_PATH, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def markdown_json_blocks(path, section):
    """The ```json blocks of the markdown file @path that lie in the section
    whose heading line is @section (up to the next heading of the same level)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    level = section.split(" ", 1)[0]
    start = lines.index(section)
    blocks, block = [], None
    for line in lines[start + 1:]:
        if block is None and line.startswith(level + " "):
            break
        if block is None and line.strip() == "```json":
            block = []
        elif block is not None and line.strip() == "```":
            blocks.append("\n".join(block))
            block = None
        elif block is not None:
            block.append(line)
    return blocks


def protocol_md_path():
    for path in (os.environ.get("EXW_PROTOCOL_MD"), os.path.join(ROOT, "PROTOCOL.md"),
                 os.path.join(ROOT, "..", "shared", "PROTOCOL.md")):
        if path and os.path.isfile(path):
            return path
    return None


def base_job(**kw):
    d = {"id": "edge-1", "lookup": {"service": "tether", "key": "sn"},
         "columns": [{"header": "SN", "field": "sn"}, {"header": "Name", "lookup": "/name"}],
         "rows": [{"sn": "C-1"}]}
    d.update(kw)
    return d


# Documents at the edges of the schema's own rules, beyond the corpus: each is
# (name, document, whether the worker accepts it).
EDGES = [
    ("service in lower case", base_job(lookup={"service": "tether", "key": "sn"}), True),
    ("service in mixed case with digits", base_job(lookup={"service": "Tether2", "key": "sn"}),
     True),
    ("service of 65 characters", base_job(lookup={"service": "S" * 65, "key": "sn"}), False),
    ("service with a final newline", base_job(lookup={"service": "tether\n", "key": "sn"}),
     False),
    ("service with an underscore", base_job(lookup={"service": "te_ther", "key": "sn"}), False),
    ("lookup key null", base_job(lookup={"service": "tether", "key": None}), False),
    ("lookup null without lookup columns",
     base_job(lookup=None, columns=[{"header": "SN", "field": "sn"}]), True),
    ("lookup without lookup columns", base_job(columns=[{"header": "SN", "field": "sn"}]),
     True),
    ("id of 128 characters", base_job(id="i" * 128), True),
    ("id with every allowed kind of character", base_job(id="aZ09._:-"), True),
    ("id with a final newline", base_job(id="edge-1\n"), False),
    ("field null, lookup given",
     base_job(columns=[{"header": "N", "field": None, "lookup": "/name"}]), True),
    ("lookup null, field given",
     base_job(columns=[{"header": "N", "field": "sn", "lookup": None}]), True),
    ("field and lookup both null", base_job(columns=[{"header": "N", "field": None,
                                                     "lookup": None}]), False),
    ("pointer to the whole response", base_job(columns=[{"header": "N", "lookup": ""}]), True),
    ("pointer with escapes", base_job(columns=[{"header": "N", "lookup": "/a~0b~1c/0/"}]), True),
    ("pointer of many slashes ending in a bad escape",
     base_job(columns=[{"header": "N", "lookup": "/" * 5000 + "~"}]), False),
    ("header empty", base_job(columns=[{"header": "", "field": "sn"}]), True),
    ("width 0.01", base_job(columns=[{"header": "SN", "field": "sn", "width": 0.01}]), True),
    ("result_ttl 1", base_job(result_ttl=1), True),
    ("result_ttl 1.0", base_job(result_ttl=1.0), True),
    ("result_ttl 1e3", parse_strict(json.dumps(base_job())[:-1].encode() +
                                    b', "result_ttl": 1e3}'), True),
    ("on_lookup_error blank", base_job(on_lookup_error="blank"), True),
    ("filename with a final newline", base_job(filename="x.xlsx\n"), False),
    ("filename with DEL", base_job(filename="x\x7f.xlsx"), False),
    ("filename with non-ASCII", base_job(filename="r\u00e9sum\u00e9.xlsx"), True),
    ("sheet with an inner apostrophe", base_job(sheet="O'Brien"), True),
    ("sheet of one apostrophe", base_job(sheet="'"), False),
    ("sheet of one character", base_job(sheet="S"), True),
    ("sheet ending in an apostrophe, then a newline", base_job(sheet="S'\n"), True),
    ("rows empty", base_job(rows=[]), True),
    ("rows null with rows_key", base_job(rows=None, rows_key="export:rows:edge-1"), True),
    ("rows_key null with rows", base_job(rows_key=None), True),
    ("rows_key under a hash-tag prefix", base_job(rows=None, rows_key="{export}:eu:rows:1"),
     True),
    ("rows_key of 1,024 characters", base_job(rows=None, rows_key="export:" + "r" * 1017),
     True),
    ("rows_key of 1,025 characters", base_job(rows=None, rows_key="export:" + "r" * 1018),
     False),
    ("rows_key with DEL", base_job(rows=None, rows_key="export:rows\x7f"), False),
    ("rows_key starting with a colon", base_job(rows=None, rows_key=":rows"), False),
    ("row with a nested member", base_job(rows=[{"sn": "C-1", "meta": {"a": 1}}]), False),
    ("row member of every scalar type",
     base_job(rows=[{"sn": "C-1", "s": "x", "n": 1.5, "b": False, "z": None}]), True),
]


class Schema(unittest.TestCase):

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.schema = load_schema()
        jsonschema.Draft202012Validator.check_schema(cls.schema)
        cls.validator = jsonschema.Draft202012Validator(cls.schema)

    def raw_errors(self, doc):
        """(path, message) of each error; the path of an error of the rule that
        ties lookup columns to the lookup member (the root's if/then) is None:
        it is about both places at once."""
        return in_deep_thread(lambda: [
            (None if list(e.absolute_schema_path)[:1] == ["then"] else list(e.absolute_path),
             e.message[:200]) for e in self.validator.iter_errors(doc)])

    @staticmethod
    def show_path(path):
        if path is None:
            return "(lookup columns need a lookup member)"
        return "/".join(str(p) for p in path) or "(document)"

    def errors(self, doc):
        return ["%s: %s" % (self.show_path(path), message)
                for path, message in self.raw_errors(doc)]

    def assert_valid(self, name, doc):
        with self.subTest(name):
            self.assertEqual(self.errors(doc), [], "%s should validate" % name)

    def test_meta(self):
        self.assertEqual(self.schema["$schema"], "https://json-schema.org/draft/2020-12/schema")
        for key in ("$id", "title", "description", "examples"):
            self.assertIn(key, self.schema)
        for name, sub in self.schema["properties"].items():
            self.assertIn("description", sub, "properties.%s has no description" % name)

    def test_good_documents(self):
        good = {}
        for i, ex in enumerate(self.schema["examples"]):
            good["schema examples[%d]" % i] = ex
        blocks = markdown_json_blocks(os.path.join(ROOT, "docs", "protocol.md"),
                                      "## The job document")
        self.assertTrue(blocks, "docs/protocol.md: no ```json block under The job document")
        for i, text in enumerate(blocks):
            good["docs/protocol.md example %d" % i] = json.loads(text)
        path = protocol_md_path()
        if path is not None:
            blocks = markdown_json_blocks(path, "## 2. The job document")
            self.assertTrue(blocks, "%s: no ```json block in section 2" % path)
            for i, text in enumerate(blocks):
                good["PROTOCOL.md section 2 example %d" % i] = json.loads(text)
        else:
            print("\nPROTOCOL.md not found beside the repository (set EXW_PROTOCOL_MD): "
                  "its example is checked through docs/protocol.md's only")

        import demo_client
        good["scripts/demo_client.py make_job"] = demo_client.make_job("exp-demo-1", 100)
        import test_corpus
        good["test_corpus.py good_job"] = test_corpus.good_job("good-after-corpus")
        good["harness.py lookup_job_doc"] = harness.lookup_job_doc("lk-1", ["K-1", "K-2", "K-1"])
        for name, doc in corpus_util.limit_jobs().items():
            good["limit " + name] = json.loads(doc) if isinstance(doc, bytes) else doc
        seeds = os.path.join(ROOT, "tests", "fuzz", "seeds", "job")
        for name in ("minimal.json", "full.json", "rows_key.json"):
            with open(os.path.join(seeds, name), "rb") as f:
                good["fuzz seed " + name] = parse_strict(f.read())
        good_dir = os.path.join(ROOT, "tests", "corpus", "good")
        if os.path.isdir(good_dir):
            for name in sorted(os.listdir(good_dir)):
                if name.endswith(".json"):
                    with open(os.path.join(good_dir, name), "rb") as f:
                        data = f.read().replace(corpus_util.PREFIX_PLACEHOLDER, PREFIX.encode())
                    good["tests/corpus/good/" + name] = parse_strict(data)
        for name, doc in good.items():
            self.assert_valid(name, doc)
        print("\n%d good documents validate" % len(good))

    def test_edges(self):
        for name, doc, ok in EDGES:
            with self.subTest(name):
                errors = self.errors(doc)
                if ok:
                    self.assertEqual(errors, [], "%s should validate" % name)
                else:
                    self.assertNotEqual(errors, [], "%s should be refused" % name)

    def test_bad_corpus(self):
        cases = corpus_util.load_corpus(PREFIX)
        names = {c.name for c in cases}
        self.assertEqual(sorted(set(NOT_JSON) - names), [], "NOT_JSON names no such file")
        self.assertEqual(sorted(set(SCHEMA_CANNOT_EXPRESS) - names), [],
                         "SCHEMA_CANNOT_EXPRESS names no such file")
        not_json, accepted, refused, wrong_reason = {}, [], {}, []
        for c in cases:
            try:
                doc = in_deep_thread(lambda: parse_strict(c.data))
            except NotJSON as e:
                not_json[c.name] = str(e)
                continue
            errors = self.raw_errors(doc)
            if not errors:
                accepted.append(c.name)
                continue
            refused[c.name] = ["%s: %s" % (self.show_path(path), m) for path, m in errors]
            # Refused for the worker's reason: an error at the member the
            # worker's error names, inside it, or around it.
            where = worker_error_path(c.error_contains)
            if where is not None and not any(path is None or path[:len(where)] == where[:len(path)]
                                              for path, _ in errors):
                wrong_reason.append("%s: the worker names %s; the schema says %s"
                                    % (c.name, c.error_contains[0], refused[c.name]))

        print("\nbad corpus: %d documents: %d not JSON, %d refused by the schema, "
              "%d accepted (the schema cannot express what is wrong)"
              % (len(cases), len(not_json), len(refused), len(accepted)))
        for name in sorted(refused):
            print("  refused %-44s %s" % (name, refused[name][0][:90]))
        for name in sorted(accepted):
            print("  accepted %-43s %s" % (name, SCHEMA_CANNOT_EXPRESS.get(name, "(not listed)")))

        self.assertEqual(sorted(not_json), sorted(NOT_JSON),
                         "documents a strict parser refuses, against NOT_JSON: %r" % not_json)
        self.assertEqual(sorted(accepted), sorted(SCHEMA_CANNOT_EXPRESS),
                         "documents the schema accepts, against SCHEMA_CANNOT_EXPRESS")
        # Everything else is refused by the schema, for the worker's reason.
        self.assertEqual(wrong_reason, [])
        self.assertEqual(len(not_json) + len(accepted) + len(refused), len(cases))


if __name__ == "__main__":
    unittest.main(verbosity=2)
