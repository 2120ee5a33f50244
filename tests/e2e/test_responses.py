"""Lookup responses are untrusted: bodies that are not JSON, too big, of the wrong
type, slow, dripping, endless, compressed bombs, redirects and TLS mismatches
each end as a lookup error for the key, under on_lookup_error "fail" the job
ends lookup_failed naming the key and the cause, under "blank" it succeeds
with the key counted in lookups_failed, and the worker goes on. Keys are
percent-encoded into exactly one path segment or query value.

The mock's fault options serve most cases; a few servers of this file's own
(a redirector, a drip, an endless body, a gzip bomb, formula-like values) serve
what the mock cannot.
"""

import gzip
import json
import os
import re
import socketserver
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402
import corpus_util  # noqa: E402


class RawServer:
    """A TCP server on a free loopback port whose every connection is handed to
    @serve(sock, server) in a thread of its own. Counts connections, the
    requests and the bytes each handler reports read and sent. (The worker
    also connects once at start-up without sending anything, to resolve the
    service's name.)"""

    def __init__(self, serve):
        outer = self
        self.connections = 0
        self.requests = 0
        self.bytes_sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.connections += 1
                try:
                    serve(self.request, outer)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got_request(self):
        with self.lock:
            self.requests += 1

    def sent(self, n):
        with self.lock:
            self.bytes_sent += n

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def read_request(sock):
    """Reads one request's head; returns it (bytes) or b"" when the peer closed."""
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


def drip(sock, server):
    """Headers at once, then the body one byte every 50 ms for up to 30 s."""
    if not read_request(sock):
        return
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n")
    body = b'{"name": "' + b"d" * 980 + b'"}  '
    deadline = time.monotonic() + 30
    for byte in body:
        if server.stopping.is_set() or time.monotonic() > deadline:
            return
        sock.sendall(bytes([byte]))
        server.sent(1)
        time.sleep(0.05)


def endless(sock, server):
    """A chunked body that never ends (bounded at 200 MiB or 30 s)."""
    if not read_request(sock):
        return
    server.got_request()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b'{"pad": "' + b"x" * 16000
    piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    deadline = time.monotonic() + 30
    total = 0
    while total < 200 << 20 and time.monotonic() < deadline and not server.stopping.is_set():
        sock.sendall(piece)
        server.sent(len(piece))
        total += len(piece)
        chunk = b"x" * 16000
        piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)


class HostileResponses(E2ETest):

    def lookup_job(self, jid, keys, on_error, service="tether", columns=None):
        return {"id": jid, "on_lookup_error": on_error,
                "lookup": {"service": service, "key": "k"},
                "columns": columns or [{"header": "K", "field": "k"},
                                       {"header": "Name", "lookup": "/name"},
                                       {"header": "Score", "lookup": "/score",
                                        "type": "integer"}],
                "rows": [{"k": k} for k in keys]}

    def own_server(self, server):
        self._at_end.append(server.stop)
        return server

    def assert_fail_and_blank(self, service, bad_key, cause_words, good_key="OK-1",
                              requests_per_key=None, mock=None, timeout=30, max_seconds=None,
                              columns=None):
        """Runs a job with @bad_key and @good_key under fail, then under blank."""
        before = mock.lookups() if mock else None
        jid = "fail-%s-%s" % (service, re.sub(r"[^A-Za-z0-9]", "", bad_key))
        t0 = time.monotonic()
        st = self.run_job(self.lookup_job(jid, [good_key, bad_key], "fail", service, columns),
                          expect="failed", timeout=timeout)
        took = time.monotonic() - t0
        self.assertEqual(st.get("error_code"), "lookup_failed", st)
        self.assertIn(bad_key, st.get("error", ""), "the error must name the key: %r" % st)
        for w in cause_words:
            self.assertRegex(st.get("error", ""), re.compile(w, re.I),
                             "the error must name the cause (%s): %r" % (w, st.get("error")))
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)
        if max_seconds is not None:
            self.assertLess(took, max_seconds, "the job took %.1f s" % took)
        job = self.lookup_job(jid.replace("fail-", "blank-"), [good_key, bad_key, good_key],
                              "blank", service, columns)
        st = self.run_job(job, timeout=timeout)
        self.assertEqual(st.get("lookups_failed"), "1", st)
        self.assertEqual(st.get("lookups_total"), "2", st)
        if service == "tether":
            ws = self.workbook(self.result_bytes(st)).active
            self.assert_rows(ws, job["columns"], job["rows"], lookup_key="k",
                             failed_keys={bad_key})
        if mock is not None and requests_per_key is not None:
            self.assertEqual(mock.lookups() - before, 2 * (1 + requests_per_key),
                             "want 1 request for the good key and %d for the bad one, per job"
                             % requests_per_key)
        return st

    # -----------------------------------------------------------------------
    def test_bodies_not_json_too_big_or_of_the_wrong_type(self):
        mock = self.start_mock("--garbage", "G*", "--huge", "H*=200000")
        w = self.start_worker(mock, EXPORT_MAX_RESPONSE_BYTES=65536,
                              EXPORT_SERVICE_TETHER_RETRIES=2)
        with self.subTest("not JSON"):
            self.assert_fail_and_blank("tether", "G-1", ["not JSON"], requests_per_key=1,
                                       mock=mock)
        with self.subTest("over EXPORT_MAX_RESPONSE_BYTES"):
            self.assert_fail_and_blank("tether", "H-1", ["over 65536 bytes"],
                                       requests_per_key=1, mock=mock)
        with self.subTest("pointer to a value of the wrong type"):
            cols = [{"header": "K", "field": "k"},
                    {"header": "Score", "lookup": "/score", "type": "integer"},
                    {"header": "Name as date", "lookup": "/name", "type": "date"}]
            # Every key's /name is text, so every key fails: use the key as its own check.
            before = mock.lookups()
            st = self.run_job(self.lookup_job("wrongtype-fail", ["W-1"], "fail", columns=cols),
                              expect="failed")
            self.assertEqual(st.get("error_code"), "lookup_failed", st)
            for word in ["W-1", "/name", "date"]:
                self.assertIn(word, st.get("error", ""), st)
            st = self.run_job(self.lookup_job("wrongtype-blank", ["W-1", "W-2"], "blank",
                                              columns=cols))
            self.assertEqual(st.get("lookups_failed"), "2", st)
            ws = self.workbook(self.result_bytes(st)).active
            self.assertEqual([[c.value for c in row] for row in ws.iter_rows(min_row=2)],
                             [["W-1", None, None], ["W-2", None, None]],
                             "under blank all of a failed key's lookup cells stay empty")
            self.assertEqual(mock.lookups() - before, 3, "a wrong type is not retried")
        self.assertTrue(w.running())
        stats = self.stats()
        self.assertEqual(stats.get("lookup_errors"), 7, stats)  # 1 + 1, 1 + 1, 1 + 2

    def test_slow_answers_time_out(self):
        mock = self.start_mock("--slow", "S*=3000")
        drip_server = self.own_server(RawServer(drip))
        w = self.start_worker(mock, EXPORT_SERVICE_TETHER_TIMEOUT_MS=300,
                              EXPORT_SERVICE_TETHER_RETRIES=1,
                              EXPORT_SERVICE_DRIP_URL=drip_server.base + "/c/{key}",
                              EXPORT_SERVICE_DRIP_TIMEOUT_MS=600,
                              EXPORT_SERVICE_DRIP_RETRIES=0)
        with self.subTest("--slow: no answer within TIMEOUT_MS, retried once"):
            self.assert_fail_and_blank("tether", "S-1", ["no answer within 300 ms"],
                                       requests_per_key=2, mock=mock, max_seconds=3.0)
        with self.subTest("a drip: the limit is on the whole request, not between bytes"):
            t0 = time.monotonic()
            st = self.run_job(self.lookup_job("drip-fail", ["D-1"], "fail", "drip"),
                              expect="failed", timeout=20)
            took = time.monotonic() - t0
            self.assertEqual(st.get("error_code"), "lookup_failed", st)
            self.assertIn("D-1", st.get("error", ""))
            self.assertIn("no answer within 600 ms", st.get("error", ""))
            self.assertLess(took, 3.0, "a 600 ms limit let a dripping answer run %.1f s" % took)
            st = self.run_job(self.lookup_job("drip-blank", ["D-2", "D-2"], "blank", "drip"),
                              timeout=20)
            self.assertEqual(st.get("lookups_failed"), "1", st)
            self.assertLess(drip_server.bytes_sent, 200,
                            "the drip went on long after the limit (%d bytes)"
                            % drip_server.bytes_sent)
        self.assertTrue(w.running())

    def test_redirects_are_not_followed(self):
        mock = self.start_mock("--redirect", "M*")
        target = self.own_server(corpus_util.TinyHTTP(
            lambda h: (200, {"Content-Type": "application/json"},
                       json.dumps(harness.mock_body("stolen")).encode())))
        codes = {"R301": 301, "R302": 302, "R303": 303, "R307": 307, "R308": 308}

        def redirect(h):
            key = urllib.parse.unquote(h.path.rsplit("/", 1)[-1])
            return (codes.get(key, 302), {"Location": target.base + "/c/" + key,
                                          "Content-Type": "application/json"},
                    b'{"name": "moved"}')
        redirector = self.own_server(corpus_util.TinyHTTP(redirect))
        w = self.start_worker(mock, EXPORT_SERVICE_TETHER_RETRIES=2,
                              EXPORT_SERVICE_REDIR_URL=redirector.base + "/c/{key}",
                              EXPORT_SERVICE_REDIR_RETRIES=2)
        with self.subTest("mock --redirect: a final error, not retried"):
            self.assert_fail_and_blank("tether", "M-1", ["HTTP 302"], requests_per_key=1,
                                       mock=mock)
        with self.subTest("301, 302, 303, 307, 308: the Location is never requested"):
            for key, code in codes.items():
                st = self.run_job(self.lookup_job("redir-" + key, [key], "fail", "redir"),
                                  expect="failed")
                self.assertEqual(st.get("error_code"), "lookup_failed", st)
                self.assertIn("HTTP %d" % code, st.get("error", ""))
                self.assertIn(key, st.get("error", ""))
            st = self.run_job(self.lookup_job("redir-blank", list(codes), "blank", "redir",
                                              columns=[{"header": "K", "field": "k"},
                                                       {"header": "N", "lookup": "/name"}]))
            self.assertEqual(st.get("lookups_failed"), str(len(codes)), st)
            ws = self.workbook(self.result_bytes(st)).active
            self.assertEqual([r[1].value for r in ws.iter_rows(min_row=2)], [None] * len(codes),
                             "the body of a redirect must not fill cells")
            self.assertEqual(len(redirector.requests), 2 * len(codes),
                             "one request per key and job: a redirect is not retried")
            self.assertEqual(target.requests, [], "the worker followed a redirect")
        self.assertTrue(w.running())

    def test_endless_bodies_and_compression_bombs_are_capped(self):
        endless_server = self.own_server(RawServer(endless))
        bomb = gzip.compress(b'{"name": "' + b"a" * (64 << 20) + b'"}', 9)
        self.assertLess(len(bomb), 200000)
        deep = b"[" * 30000 + b"]" * 30000  # deeper than 512, within the byte cap
        bodies = {
            "BOMB": (bomb, {"Content-Encoding": "gzip"}),
            "DEEP": (deep, {}),
            "BADUTF8": (b'{"name": "caf\xe9"}', {}),
            "NUL": (b'{"name": "a\\u0000b"}', {}),
            "INF": (b'{"name": "n", "score": 1e999}', {}),
            "LONGTEXT": (json.dumps({"name": "x" * 32768}).encode(), {}),
            "SURROGATE": (b'{"name": "\\ud800"}', {}),
            "EMPTY": (b"", {}),
            "TRAILING": (b'{"name": "x"} {"name": "y"}', {}),
        }

        def serve(h):
            key = urllib.parse.unquote(h.path.rsplit("/", 1)[-1]).split("-")[0]
            body, headers = bodies[key]
            return 200, dict({"Content-Type": "application/json"}, **headers), body
        hostile = self.own_server(corpus_util.TinyHTTP(serve))
        # A batch service whose every answer is the bomb.
        bombs = self.own_server(corpus_util.TinyHTTP(
            lambda h: (200, {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                       bomb)))
        w = self.start_worker(self.start_mock(), EXPORT_MAX_RESPONSE_BYTES=65536,
                              EXPORT_SERVICE_BOMBS_URL=bombs.base + "/c/{key}",
                              EXPORT_SERVICE_BOMBS_BATCH_URL=bombs.base + "/b/{keys}",
                              EXPORT_SERVICE_BOMBS_RETRIES=3,
                              EXPORT_SERVICE_ENDLESS_URL=endless_server.base + "/c/{key}",
                              EXPORT_SERVICE_ENDLESS_RETRIES=3,
                              EXPORT_SERVICE_HOSTILE_URL=hostile.base + "/c/{key}",
                              EXPORT_SERVICE_HOSTILE_RETRIES=3)
        cols = [{"header": "K", "field": "k"}, {"header": "N", "lookup": "/name"},
                {"header": "S", "lookup": "/score", "type": "number"}]
        with self.subTest("an endless chunked body"):
            t0 = time.monotonic()
            st = self.run_job(self.lookup_job("endless", ["E-1"], "fail", "endless", cols),
                              expect="failed", timeout=30)
            self.assertEqual(st.get("error_code"), "lookup_failed", st)
            self.assertIn("over 65536 bytes", st.get("error", ""))
            self.assertLess(time.monotonic() - t0, 10)
            self.assertEqual(endless_server.requests, 1, "a body over the cap is not retried")
        for key, words in [("BOMB", ["not JSON"]), ("DEEP", ["not JSON"]),
                           ("BADUTF8", ["not JSON"]), ("NUL", ["not JSON"]),
                           ("INF", ["not JSON"]), ("LONGTEXT", ["/name", "32767"]),
                           ("SURROGATE", ["not JSON"]), ("EMPTY", ["not JSON"]),
                           ("TRAILING", ["not JSON"])]:
            with self.subTest(key):
                n0 = len(hostile.requests)
                st = self.run_job(self.lookup_job("hostile-" + key.lower(), [key + "-1"],
                                                  "fail", "hostile", cols),
                                  expect="failed", timeout=30)
                self.assertEqual(st.get("error_code"), "lookup_failed", st)
                self.assertIn(key + "-1", st.get("error", ""))
                missing = corpus_util.contains_all(st.get("error", ""), words)
                self.assertEqual(missing, [], "error %r" % st.get("error"))
                self.assertEqual(len(hostile.requests) - n0, 1, "a final error is not retried")
        with self.subTest("a single lookup asks for no compression, and none is undone"):
            # The bomb's 65 KB arrive as they are: gzip bytes, not JSON.
            self.assertTrue(any(p.endswith("/BOMB-1") for p, _ in hostile.requests))
            asked = [h for _, h in hostile.requests if "Accept-Encoding" in h]
            self.assertEqual(asked, [], "a single lookup asked for a compressed body")
        with self.subTest("a batch asks for compression and the cap counts inflated bytes"):
            st = self.run_job(self.lookup_job("bombs", ["B-1", "B-2"], "fail", "bombs", cols),
                              expect="failed", timeout=30)
            self.assertEqual(st.get("error_code"), "lookup_failed", st)
            # A batch's cap is the single cap times its keys.
            self.assertIn("over 131072 bytes", st.get("error", ""))
            self.assertEqual(len(bombs.requests), 1, "a body over the cap is not retried")
            path, headers = bombs.requests[0]
            self.assertTrue(path.startswith("/b/"), path)
            self.assertIn("gzip", headers.get("Accept-Encoding", ""))
        with self.subTest("all of them under blank, in one job"):
            keys = ["E-2"]
            st = self.run_job(self.lookup_job("hostile-blank", keys, "blank", "endless", cols),
                              timeout=30)
            self.assertEqual(st.get("lookups_failed"), "1", st)
            keys = [k + "-2" for k in bodies]
            st = self.run_job(self.lookup_job("hostile-blank2", keys, "blank", "hostile", cols),
                              timeout=30)
            self.assertEqual(st.get("lookups_failed"), str(len(keys)), st)
        with open("/proc/%d/status" % w.pid) as f:
            hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
        self.assertLess(hwm, 256 * 1024, "the worker's peak memory reached %d kB" % hwm)
        self.assertTrue(w.running())

    def test_text_from_a_response_is_never_a_formula(self):
        values = {"name": '=HYPERLINK("http://127.0.0.1:1/x","click")', "plus": "+1+1",
                  "minus": "-2+3", "at": "@SUM(A1)", "dde": "=cmd|' /C calc'!A0",
                  "tab": "\t=1+1", "cr": "\r=1+1", "x000d": "_x000D_=1"}
        server = self.own_server(corpus_util.TinyHTTP(
            lambda h: (200, {"Content-Type": "application/json"}, json.dumps(values).encode())))
        self.start_worker(env=self.worker_env(
            EXPORT_SERVICE_EVIL_URL=server.base + "/c/{key}"))
        cols = [{"header": "K", "field": "k"}] + [
            {"header": name, "lookup": "/" + name} for name in values]
        job = {"id": "formula", "lookup": {"service": "evil", "key": "k"}, "columns": cols,
               "rows": [{"k": "=1+2"}]}
        st = self.run_job(job)
        data = self.result_bytes(st)
        cells = harness.raw_cells(data)
        formulas = [ref for ref, (_, has_f, _) in cells.items() if has_f]
        self.assertEqual(formulas, [], "formula cells written: %s" % formulas)
        row2 = sorted((ref, cell) for ref, cell in cells.items() if re.fullmatch(r"[A-Z]+2", ref))
        self.assertEqual([value for _, (_, _, value) in row2], ["=1+2"] + list(values.values()))
        self.assertLessEqual({t for _, (t, _, _) in row2}, {"s", "inlineStr"},
                             "every cell must be text")

    def test_keys_are_exactly_one_path_segment_or_query_value(self):
        """PROTOCOL.md section 4: every byte of a key outside RFC 3986's unreserved
        set is percent-encoded, "so the key is exactly one path segment or one
        query value". Checked on the raw request target the service received."""
        record_path = os.path.join(self.tmp, "path.tsv")
        record_query = os.path.join(self.tmp, "query.tsv")
        path_mock = self.start_mock("--record", record_path)
        query_mock = self.start_mock("--record", record_query)
        self.start_worker(env=self.worker_env(
            EXPORT_SERVICE_PATH_URL=path_mock.url("/contract/{key}"),
            EXPORT_SERVICE_QUERY_URL=query_mock.url("/contract/?sn={key}&v=1"),
            EXPORT_SERVICE_PATH_RETRIES=0, EXPORT_SERVICE_QUERY_RETRIES=0))
        keys = ["plain", "a b", "a/b", "../../_stats", "a?b=c", "x#frag", "100%", "a&sn=evil",
                "k=v;w", "caf\u00e9", "\u65e5\u672c", "\U0001F600", "a\r\nX-Injected: 1",
                "{key}", "~tilde_dash-dot.", "+plus", "..", ".", "...", "%2e%2e",
                "x" * 2000, 12.5, 100000, 1e21]
        problems = []
        for service, record, mock in [("path", record_path, path_mock),
                                      ("query", record_query, query_mock)]:
            job = {"id": "keys-" + service, "on_lookup_error": "blank",
                   "lookup": {"service": service, "key": "k"},
                   "columns": [{"header": "K", "field": "k"}, {"header": "SN", "lookup": "/sn"}],
                   "rows": [{"k": k} for k in keys]}
            st = self.run_job(job, timeout=60)
            with open(record, "rb") as f:
                targets = [line.split(b"\t", 1)[0].decode("ascii", "replace")
                           for line in f.read().split(b"\n") if line.startswith(b"/")]
            cells = harness.raw_cells(self.result_bytes(st))
            for i, k in enumerate(keys):
                text = harness.shortest_number_text(k) if not isinstance(k, str) else k
                enc = urllib.parse.quote(text.encode("utf-8"), safe="-._~")
                want = ("/contract/" + enc if service == "path"
                        else "/contract/?sn=" + enc + "&v=1")
                if want not in targets:
                    problems.append("%s key %r: the service never received %s" % (
                        service, text[:40], want[:80]))
                got = cells.get("B%d" % (2 + i), (None, None, None))[2]
                if got != text:
                    problems.append("%s key %r: the lookup's /sn came back as %r" % (
                        service, text[:40], got if got is None else got[:40]))
            stray = [t for t in targets if not t.startswith("/contract/")]
            if stray:
                problems.append("%s: requests outside the lookup path: %s" % (service, stray))
            by_status = mock.stats().get("by_status", {})
            if by_status.get("404") or by_status.get("400"):
                problems.append("%s: the service answered %s (a key left its segment)" % (
                    service, {k: v for k, v in by_status.items() if k != "200"}))
        self.assertEqual(problems, [], "\n".join(problems))

    def test_https_to_a_plain_http_port_fails_cleanly(self):
        mock = self.start_mock()
        w = self.start_worker(mock, EXPORT_SERVICE_TLS_URL="https://127.0.0.1:%d/contract/"
                              "?sn={key}" % mock.port, EXPORT_SERVICE_TLS_RETRIES=1)
        t0 = time.monotonic()
        st = self.run_job(self.lookup_job("tls-fail", ["T-1"], "fail", "tls"), expect="failed",
                          timeout=30)
        self.assertEqual(st.get("error_code"), "lookup_failed", st)
        self.assertIn("T-1", st.get("error", ""))
        self.assertRegex(st.get("error", ""), re.compile(r"SSL|TLS|handshake|wrong version",
                                                         re.I))
        self.assertLess(time.monotonic() - t0, 10)
        st = self.run_job(self.lookup_job("tls-blank", ["T-1", "T-2"], "blank", "tls"))
        self.assertEqual(st.get("lookups_failed"), "2", st)
        self.assertTrue(w.running())
        st = self.run_job(self.lookup_job("tls-after", ["OK-1"], "fail"))
        self.assertEqual(st.get("lookups_failed"), "0")

    def test_tls_ca_file_setting(self):
        """EXPORT_TLS_CA_FILE: a file that cannot be read is a configuration error
        (exit 2 naming the variable and why), a readable PEM file is accepted."""
        pki = corpus_util.make_test_pki(self.tmp)
        env = self.worker_env(self.start_mock())
        problems = []
        cases = [(os.path.join(self.tmp, "no-such-ca.pem"), 2), (self.tmp, 2)]
        if pki is not None:
            cases.append((pki["ca"], "runs"))
        for path, want in cases:
            env["EXPORT_TLS_CA_FILE"] = path
            try:
                rc, out = self.run_worker_once(env=env, timeout=4)
            except Exception:  # subprocess.TimeoutExpired: it started and ran
                rc, out = "runs", ""
            first = (out.strip().splitlines() or [""])
            first = first[1] if len(first) > 1 else first[0]
            if want == 2 and (rc != 2 or not re.search(
                    r"EXPORT_TLS_CA_FILE: \S", out)):
                problems.append("EXPORT_TLS_CA_FILE=%s (%s): want exit 2 naming the variable "
                                "and the reason, got %s: %r" % (
                                    path, "missing" if not os.path.exists(path) else "a folder",
                                    "a running worker" if rc == "runs" else "exit %s" % rc,
                                    first))
            if want == "runs" and rc != "runs":
                problems.append("EXPORT_TLS_CA_FILE=%s (a readable PEM file of a CA): want the "
                                "worker to start, got exit %s: %r" % (path, rc, first))
        # A worker that ran here may have registered: forget it.
        for k in list(self.r.scan_iter(match=self.key("*"))):
            self.r.delete(k)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_tls_certificates_are_verified(self):
        """https lookups check the certificate chain and the name: a self-signed
        certificate, one for another name, and one of a private CA that the
        worker was not told about are each a lookup error; with
        EXPORT_TLS_CA_FILE naming the private CA, the lookup succeeds."""
        import ssl
        pki = corpus_util.make_test_pki(self.tmp)
        if pki is None:
            self.skipTest("no openssl command to make test certificates")
        body = lambda h: (200, {"Content-Type": "application/json"},  # noqa: E731
                          json.dumps(harness.mock_body(urllib.parse.unquote(
                              h.path.rsplit("/", 1)[-1]))).encode())
        servers = {}
        for name in ("good", "wrong_name", "self_signed"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*pki[name])
            servers[name] = self.own_server(corpus_util.TinyHTTP(body, ssl_context=ctx))
        services = {"EXPORT_SERVICE_%s_URL" % n.replace("_", "").upper(): srv.base + "/c/{key}"
                    for n, srv in servers.items()}
        services.update({"EXPORT_SERVICE_%s_RETRIES" % n.replace("_", "").upper(): 0
                         for n in servers})
        cols = [{"header": "K", "field": "k"}, {"header": "Name", "lookup": "/name"}]

        def job(jid, service):
            return self.lookup_job(jid, ["K-1"], "fail", service, cols)

        # Without the CA file: every one of them fails verification.
        w = self.start_worker(env=self.worker_env(**services))
        for name in servers:
            with self.subTest("system CAs, " + name):
                st = self.run_job(job("sys-" + name.replace("_", "-"), name.replace("_", "")),
                                  expect="failed")
                self.assertEqual(st.get("error_code"), "lookup_failed", st)
                self.assertRegex(st.get("error", ""), re.compile(r"certificate|SSL|TLS", re.I))
        self.assertTrue(w.running())
        w.stop()
        self.workers.remove(w)
        # With the private CA: the good one works, the others still fail.
        w = self.start_worker(env=self.worker_env(EXPORT_TLS_CA_FILE=pki["ca"], **services))
        time.sleep(1)
        if not w.running():
            self.workers.remove(w)
            self.fail("the worker did not start with EXPORT_TLS_CA_FILE=%s (a PEM file of the "
                      "private CA): exit %s: %s" % (pki["ca"], w.proc.returncode,
                                                    w.log().strip()[:300]))
        st = self.run_job(job("ca-good", "good"))
        self.assertEqual(st.get("lookups_failed"), "0", st)
        for name in ("wrong_name", "self_signed"):
            with self.subTest("private CA, " + name):
                st = self.run_job(job("ca-" + name.replace("_", "-"), name.replace("_", "")),
                                  expect="failed")
                self.assertEqual(st.get("error_code"), "lookup_failed", st)


if __name__ == "__main__":
    harness.main()
