#!/usr/bin/python3
"""Self-test of export-mock-lookup: starts the binary given as argv[1] and checks every option.

Usage: mock_selftest.py path/to/export-mock-lookup
Standard library only. Prints one line per failed check and "N passed, M failed" at the end;
exits non-zero when anything failed.
"""

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BIN = None
PASSED = 0
FAILED = 0
TMP = tempfile.mkdtemp(prefix="mock-selftest-")
RUNNING = []


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: " + what, flush=True)
    return cond


def expected(key):
    """The documented answer for a key (bytes), as a Python object."""
    h = 14695981039346656037
    for b in key:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    day = datetime.date(2020, 1, 1) + datetime.timedelta(days=(h >> 40) % 2000)
    return {
        "sn": key.decode("utf-8", "replace"),
        "name": "Customer-%03d" % ((h >> 32) % 1000),
        "discount": {"ratio": (h % 10000) / 10000},
        "score": (h >> 16) % 1000,
        "active": ((h >> 8) & 1) == 1,
        "signed_on": day.isoformat(),
        "note": None,
    }


def enc(key, safe=""):
    return urllib.parse.quote(key, safe=safe)


class Mock:
    """One running mock; stderr is collected in the background."""

    def __init__(self, *args, host="127.0.0.1"):
        self.args = ["--port", "0"] + list(args)
        self.proc = subprocess.Popen([BIN] + self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        RUNNING.append(self)
        self.err = []
        self.t_err = threading.Thread(target=self._drain_err, daemon=True)
        self.t_err.start()
        self.line = None
        t = threading.Thread(target=self._read_line, daemon=True)
        t.start()
        t.join(10)
        m = re.fullmatch(r"listening on http://%s:(\d+)\n" % re.escape(host), self.line or "")
        check(m is not None, "start-up line for %r: %r" % (args, self.line))
        self.port = int(m.group(1)) if m else 0

    def _read_line(self):
        self.line = self.proc.stdout.readline().decode()

    def _drain_err(self):
        for line in self.proc.stderr:
            self.err.append(line.decode("utf-8", "replace"))

    def stderr(self):
        return "".join(self.err)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            check(False, "mock did not stop within %ss" % timeout)
        self.t_err.join(5)
        check(rc == 0 and "Sanitizer" not in self.stderr(),
              "mock %r exits 0 and clean: %r %s" % (self.args, rc, self.stderr()[-2000:]))
        return rc

    def request(self, target, method="GET", headers=None, timeout=10, conn=None):
        """Returns (status, headers dict lowercased, body bytes, seconds)."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        try:
            conn.request(method, target, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, body, time.monotonic() - t0
        finally:
            if own:
                conn.close()

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/_stats" % self.port, timeout=5) as r:
            return json.loads(r.read())


def run(args, timeout=10):
    return subprocess.run([BIN] + args, capture_output=True, timeout=timeout)


# A mix of keys that break naive escaping, decoding or JSON writers.
KEYS = [
    "C-0001", "../admin", "a?b=c#d", "x&y", "a b", "é", "a+b", "100%", 'q"uote', "back\\slash",
    "tab\there", "nl\nend", "ctl\x01\x1f\x7f", "日本語キー", "emoji-😀", "semi;colon", "=", "%41",
    "x" * 5000,
]


def test_cli():
    r = run(["--help"])
    check(r.returncode == 0 and b"--latency-ms" in r.stdout, "--help exits 0 with usage")
    bad = [
        ["--nope"], ["--port", "70000"], ["--port=abc"], ["--port= 1"], ["--latency-ms", "-1"],
        ["--fail", "x"], ["--fail", "x=600"], ["--fail=x=99"], ["--slow", "=5"],
        ["--huge", "x=-1"], ["--error-rate", "2"], ["--drop-rate=nan"],
        ["--error-rate", "0.6", "--drop-rate", "0.6"], ["positional"], ["--auth", ""],
        ["--path", "contract"], ["--seed", "-1"], ["--port"], ["--help=1"], ["--garbage="],
        ["--auth-file", "x"],
    ]
    for args in bad:
        r = run(args)
        check(r.returncode == 2 and r.stderr and not r.stdout, "bad option %r exits 2" % args)
    r = run(["--auth", "sekrit-value", "--port", "x"])
    check(r.returncode == 2 and b"sekrit" not in r.stderr, "errors never echo --auth")


def test_basic():
    pf = os.path.join(TMP, "port")
    m = Mock("--latency-ms=0", "--port-file", pf)
    with open(pf) as f:
        text = f.read()
    check(text == "%d\n" % m.port, "port file holds the port: %r" % text)
    check(not [n for n in os.listdir(TMP) if ".tmp." in n], "port file temp renamed away")
    for key in KEYS:
        kb = key.encode()
        exp = expected(kb)
        for target in ("/contract/" + enc(key), "/contract?sn=" + enc(key),
                       "/contract/?a=1&sn=" + enc(key) + "&sn=other"):
            st, h, body, _ = m.request(target)
            ok = st == 200 and h.get("content-type") == "application/json"
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            ok = ok and doc == exp and list(doc) == list(exp)
            ok = ok and type(doc["score"]) is int and type(doc["active"]) is bool
            ratio = re.search(rb'"ratio":([^}]*)}', body).group(1)
            ok = ok and float(ratio) == (exp["discount"]["ratio"]) and len(ratio) <= 6
            check(ok, "body for %r via %r: %r" % (key[:40], target[:60], body[:200]))
        _, _, again, _ = m.request("/contract/" + enc(key))
        check(again == body, "body is deterministic for %r" % key[:40])
    # Raw bytes: NUL and invalid UTF-8 are hashed as sent and echoed as valid JSON.
    for raw, target in ((b"a\x00b", "/contract/a%00b"), (b"\xff\xfe", "/contract/%FF%FE")):
        st, _, body, _ = m.request(target)
        check(st == 200 and json.loads(body) == expected(raw), "raw key %r: %r" % (raw, body))
    # '+' is literal in both forms, and lowercase escapes decode too.
    for target, key in (("/contract/a+b", "a+b"), ("/contract?sn=a+b", "a+b"),
                        ("/contract/%2e%2e", ".."), ("/contract/?sn=%20x%20", " x ")):
        st, _, body, _ = m.request(target)
        check(st == 200 and json.loads(body)["sn"] == key, "%s decodes to %r" % (target, key))
    cases = [
        ("/", 404, {"error": "not found"}), ("/other/x", 404, {"error": "not found"}),
        ("/contract/a/b", 404, {"error": "not found"}), ("/contractx", 404, None),
        ("/contract/", 400, None), ("/contract", 400, None), ("/contract/?sn=", 400, None),
        ("/contract/?other=1", 400, None), ("/contract/%zz", 400, None),
        ("/contract/%4", 400, None), ("/contract?sn=%", 400, None),
    ]
    for target, status, body in cases:
        st, h, b, _ = m.request(target)
        ok = st == status and h.get("content-type") == "application/json"
        ok = ok and "error" in json.loads(b) and (body is None or json.loads(b) == body)
        check(ok, "%s answers %d: %d %r" % (target, status, st, b))
    st, h, b, _ = m.request("/contract/x", method="POST")
    check(st == 405 and h.get("allow") == "GET, HEAD", "POST on a lookup is 405")
    st, h, b, _ = m.request("/contract/x", method="HEAD")
    check(st == 200 and b == b"", "HEAD answers 200 without a body")
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=5)
    bodies = [m.request("/contract/k%d" % i, conn=conn)[2] for i in range(5)]
    conn.close()
    check(all(json.loads(b)["sn"] == "k%d" % i for i, b in enumerate(bodies)),
          "keep-alive connection serves several lookups")
    big = "k" * 150000
    st, _, b, _ = m.request("/contract/" + big)
    check(st == 200 and json.loads(b) == expected(big.encode()), "150 kB key")
    check(m.stderr() == "", "quiet without --verbose: %r" % m.stderr()[:200])
    check(m.stop() == 0, "SIGTERM exits 0")


def test_custom_path():
    m = Mock("--latency-ms", "0", "--path", "/api/v1/lookup/", "--param=id")
    st, _, b, _ = m.request("/api/v1/lookup/?id=K1&sn=no")
    check(st == 200 and json.loads(b)["sn"] == "K1", "--param picks the query parameter")
    st, _, b, _ = m.request("/api/v1/lookup/K2")
    check(st == 200 and json.loads(b)["sn"] == "K2", "--path prefix path form")
    st, _, b, _ = m.request("/contract/K2")
    check(st == 404, "old prefix is 404 with --path")
    check(m.stop(signal.SIGINT) == 0, "SIGINT exits 0")
    m = Mock("--latency-ms=0", "--host=0.0.0.0", host="0.0.0.0")
    st, _, b, _ = m.request("/contract/any")
    check(st == 200 and json.loads(b)["sn"] == "any", "--host 0.0.0.0 serves loopback")
    m.stop()


def test_latency():
    m = Mock("--latency-ms", "300")
    st, _, _, dt = m.request("/contract/one")
    check(st == 200 and dt >= 0.295, "single request takes at least 300 ms: %.3f" % dt)
    span = m.stats()["lookup_span_ms"]
    check(295 <= span <= dt * 1000 + 1, "lookup_span_ms from its arrival to its answer: %r" % span)
    n = 200
    results = [None] * n
    barrier = threading.Barrier(n + 1)

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
        conn.connect()
        barrier.wait()
        try:
            results[i] = m.request("/contract/c%d" % i, conn=conn)
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            results[i] = e
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(20)
    total = time.monotonic() - t0
    ok = all(isinstance(r, tuple) and r[0] == 200 and r[3] >= 0.295 for r in results)
    check(ok, "200 concurrent requests all answered after >= 300 ms")
    # Concurrency is asserted by the mock's own in-flight peak, not by the wall clock
    # of a shared machine; the time is printed for whoever reads the log.
    print("200 concurrent requests at 300 ms took %.3f s" % total)
    s = m.stats()
    check(s["max_in_flight"] >= 150 and s["in_flight"] == 0, "in-flight peak: %r" % s)
    check(m.stop() == 0, "stops after load")


def test_auth():
    secret = "Bearer s3cr3t-VALUE"
    m = Mock("--latency-ms=0", "--auth", secret, "--verbose")
    st, _, b, _ = m.request("/contract/k")
    check(st == 401 and json.loads(b) == {"error": "unauthorized"}, "no Authorization: 401")
    st, _, b, _ = m.request("/contract/k", headers={"Authorization": secret + "x"})
    check(st == 401, "wrong Authorization: 401")
    st, _, b, _ = m.request("/contract/k", headers={"Authorization": secret.lower()})
    check(st == 401, "Authorization is case-sensitive")
    st, _, b, _ = m.request("/contract/k", headers={"Authorization": secret})
    check(st == 200 and json.loads(b)["sn"] == "k", "right Authorization: 200")
    check(m.stats()["requests"] == 4, "/_stats needs no Authorization")
    m.stop()
    check("s3cr3t" not in m.stderr() and "s3cr3t" not in (m.line or ""), "secret never printed")


def test_faults():
    m = Mock("--latency-ms", "0", "--fail", "f4*=404", "--fail=f5*=503", "--fail", "f9*=429",
             "--fail", "fg*=500", "--garbage", "fg*", "--garbage", "g*", "--slow", "s*=300",
             "--slow", "gs*=500", "--huge", "huge-big=50000000", "--huge", "h*=100000",
             "--huge", "tiny*=10", "--redirect", "r*", "--fail", "a=b=418", "--fail", "[0-9]*=201")
    for key, status, retry in (("f404", 404, None), ("f503", 503, "1"), ("f9", 429, "1"),
                               ("fg", 500, None), ("a=b", 418, None), ("7up", 201, None)):
        st, h, b, _ = m.request("/contract/" + enc(key))
        check(st == status and json.loads(b) == {"error": "injected"} and
              h.get("retry-after") == retry, "--fail %s: %d %r %r" % (key, st, h, b))
    for key in ("g1", "gs1"):
        st, h, b, dt = m.request("/contract/" + key)
        check(st == 200 and b == b"this is not json" and h.get("content-type") == "text/plain"
              and dt < 0.495, "--garbage %s wins over --slow: %.3f" % (key, dt))
    st, _, b, dt = m.request("/contract/slow")
    check(st == 200 and json.loads(b) == expected(b"slow") and dt >= 0.295,
          "--slow adds 300 ms: %.3f" % dt)
    st, _, b, dt = m.request("/contract/plain")
    check(st == 200 and dt < 0.295, "unmatched keys are not slowed: %.3f" % dt)
    st, _, b, _ = m.request("/contract/huge-1")
    doc = json.loads(b)
    pad = doc.pop("pad", None)
    check(st == 200 and len(b) == 100000 and doc == expected(b"huge-1") and set(pad) == {"x"},
          "--huge gives a 100000-byte valid body (%d)" % len(b))
    st, _, b, _ = m.request("/contract/tiny")
    doc = json.loads(b)
    check(st == 200 and doc.pop("pad") == "" and doc == expected(b"tiny"), "--huge below size")
    # A client that hangs up halfway through a big answer must not take the server down (SIGPIPE).
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", m.port), timeout=5)
        sock.sendall(b"GET /contract/huge-big HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1000)
        sock.close()
    st, _, b, _ = m.request("/contract/after")
    check(st == 200 and m.proc.poll() is None, "survives clients hanging up mid-answer")
    st, h, b, _ = m.request("/contract/r1")
    check(st == 302 and h.get("location") == "http://127.0.0.1:1/elsewhere", "--redirect")
    st, _, _, _ = m.request("/contract/?sn=f404")
    check(st == 404, "rules apply to the query form too")
    m.stop()


def test_random_faults():
    m = Mock("--latency-ms=0", "--error-rate", "1")
    st, _, b, _ = m.request("/contract/k")
    check(st == 500 and json.loads(b) == {"error": "injected"}, "--error-rate 1 always 500")
    m.stop()

    m = Mock("--latency-ms=100", "--drop-rate", "1", "--fail", "keep=404")
    t0 = time.monotonic()
    try:
        m.request("/contract/k")
        dropped = False
    except (http.client.HTTPException, ConnectionError):
        dropped = True
    check(dropped and time.monotonic() - t0 >= 0.095, "--drop-rate 1 closes after the latency")
    st, _, _, _ = m.request("/contract/keep")
    check(st == 404, "rules win over random faults")
    s = m.stats()
    check(s["dropped"] == 1 and s["by_status"] == {"404": 1} and s["in_flight"] == 0,
          "dropped requests counted: %r" % s)
    m.stop()

    m = Mock("--latency-ms=0", "--timeout-rate=1", "--hang-ms", "700")
    st, _, b, dt = m.request("/contract/k")
    check(st == 200 and json.loads(b)["sn"] == "k" and 0.695 <= dt < 5,
          "--timeout-rate hangs --hang-ms then answers: %.3f" % dt)
    m.stop()

    m = Mock("--latency-ms=0", "--timeout-rate", "1")
    try:
        m.request("/contract/k", timeout=1)
        timed_out = False
    except socket.timeout:
        timed_out = True
    check(timed_out, "--timeout-rate 1 outlasts a 1 s client timeout")
    holder = {}

    def hang():
        try:
            holder["r"] = m.request("/contract/k2", timeout=20)
        except Exception as e:  # noqa: BLE001
            holder["r"] = e

    t = threading.Thread(target=hang)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    rc = m.stop()
    t.join(5)
    check(rc == 0 and time.monotonic() - t0 < 10, "SIGTERM interrupts a hang (rc %r)" % rc)
    check(isinstance(holder.get("r"), Exception), "hanging request closed on shutdown")

    def sequence(seed):
        mm = Mock("--latency-ms=0", "--error-rate=0.5", "--seed", seed)
        conn = http.client.HTTPConnection("127.0.0.1", mm.port, timeout=5)
        seq = [mm.request("/contract/k%d" % i, conn=conn)[0] for i in range(400)]
        conn.close()
        mm.stop()
        return seq

    a, b, c = sequence("7"), sequence("7"), sequence("8")
    n500 = a.count(500)
    check(set(a) == {200, 500} and 150 <= n500 <= 250, "--error-rate 0.5 gives %d/400" % n500)
    check(a == b, "same --seed, same fault sequence")
    check(a != c, "different --seed, different fault sequence")

    m = Mock("--latency-ms=0", "--drop-rate=0.2", "--timeout-rate=0.2", "--hang-ms=50",
             "--error-rate=0.2", "--seed=3")
    counts = {"drop": 0, 200: 0, 500: 0}
    for i in range(300):
        try:
            counts[m.request("/contract/m%d" % i)[0]] += 1
        except (http.client.HTTPException, ConnectionError):
            counts["drop"] += 1
    check(all(30 <= counts[k] for k in counts) and counts[200] > 100, "mixed rates: %r" % counts)
    m.stop()


def record_escape(b):
    return re.sub(rb"[\x00-\x1f\\]", lambda mo: b"\\x%02x" % mo.group()[0], b)


def test_record():
    rec = os.path.join(TMP, "record.log")
    with open(rec, "wb") as f:
        f.write(b"old line\n")
    m = Mock("--latency-ms=0", "--record", rec, "--auth", "tok")
    sent = []
    hdr = {"Authorization": "tok"}
    for key in KEYS + ["\\x41"]:
        for target in ("/contract/" + enc(key), "/contract?x=1&sn=" + enc(key)):
            m.request(target, headers=hdr)
            sent.append((target, key))
    extra = [("/contract/%2E%2E%2Fadmin", "../admin"), ("/contract/%2e%2e%2fadmin", "../admin"),
             ("/contract/a+b", "a+b"), ("/contract/?sn=a+b", "a+b"), ("/contract/a%20b", "a b"),
             ("/contract/%C3%A9", "é"), ("/contract/x%26y", "x&y"),
             ("/contract/a%3Fb%3Dc%23d", "a?b=c#d"), ("/contract/", ""), ("/contract/%zz", ""),
             ("/contract/t%09%5C", "t\t\\")]
    for target, key in extra:
        m.request(target, headers=hdr)
        sent.append((target, key))
    m.request("/contract/unauth")
    sent.append(("/contract/unauth", "unauth"))
    m.request("/elsewhere")
    m.request("/_stats")
    m.stop()
    with open(rec, "rb") as f:
        lines = f.read().split(b"\n")
    check(lines[0] == b"old line" and lines[-1] == b"", "--record appends whole lines")
    lines = lines[1:-1]
    check(len(lines) == len(sent), "one record line per lookup: %d vs %d" % (len(lines), len(sent)))
    for line, (target, key) in zip(lines, sent):
        want = target.encode() + b"\t" + record_escape(key.encode())
        check(line == want, "record line %r == %r" % (line[:80], want[:80]))


def test_stats_and_verbose():
    m = Mock("--latency-ms=0", "--fail", "bad=503", "--verbose")
    for target in ("/contract/a", "/contract/b", "/contract/bad", "/nowhere"):
        m.request(target)
    s = m.stats()
    span = s.pop("lookup_span_ms")
    want = {"requests": 4, "lookups": 3, "batches": 0, "batch_keys": 0, "in_flight": 0,
            "max_in_flight": 1, "dropped": 0, "by_status": {"200": 2, "503": 1, "404": 1},
            "arrivals_per_second": [3], "max_per_second": 3, "max_in_any_second": 3}
    check(s == want, "/_stats counts: %r" % s)
    check(0 < span < 10000, "lookup_span_ms, first lookup in to last out: %r" % span)
    st, _, b, _ = m.request("/_reset", method="POST")
    check(st == 200 and json.loads(b) == {}, "POST /_reset returns {}")
    s = m.stats()
    check(s["requests"] == 0 and s["lookups"] == 0 and s["by_status"] == {} and
          s["arrivals_per_second"] == [] and s["max_in_any_second"] == 0 and
          s["lookup_span_ms"] == 0, "reset: %r" % s)
    m.request("/contract/c")
    check(m.stats()["by_status"] == {"200": 1}, "counting resumes after reset")
    m.stop()
    lines = [ln for ln in m.stderr().splitlines() if "/contract/" in ln or "/nowhere" in ln]
    check(len(lines) == 5 and " 503 " in lines[2], "--verbose logs one line per request")


def test_batch():
    rec = os.path.join(TMP, "batch.record")
    m = Mock("--latency-ms=200", "--fail", "GONE*=404", "--huge", "BIG=400", "--slow",
             "SLOW=300", "--batch-max", "5", "--record", rec)
    st, _, b, took = m.request("/batch/A,b%2Cc,%E2%82%AC,GONE1,BIG")
    body = json.loads(b)
    check(st == 200 and list(body) == ["A", "b,c", "\u20ac", "BIG"],
          "batch answer members in order, a missing key left out: %r" % list(body))
    check(body["A"] == expected(b"A") and body["b,c"] == expected(b"b,c"),
          "each member is the single answer")
    check(b'"BIG":{' in b and len(body["BIG"].get("pad", "")) > 250, "--huge pads its member")
    check(0.19 <= took < 0.9, "one latency for the batch, not one per key: %.3f s" % took)
    st, _, b, _ = m.request("/batch?sn=A,SLOW")
    check(st == 200 and list(json.loads(b)) == ["A", "SLOW"], "query form")
    _, _, _, took = m.request("/batch/SLOW,A")
    check(took >= 0.49, "--slow adds to the batch's latency: %.3f s" % took)
    for target, want in (("/batch/", 400), ("/batch/a,,b", 400), ("/batch/%zz", 400),
                         ("/batch/1,2,3,4,5,6", 400)):
        st, _, _, _ = m.request(target)
        check(st == want, "%s -> %d, want %d" % (target, st, want))
    s = m.stats()
    check(s["batches"] == 7 and s["lookups"] == 7, "batches counted: %r" % s)
    m.stop()
    lines = open(rec, encoding="utf-8").read().splitlines()
    check(lines[:5] == ["/batch/A,b%2Cc,%E2%82%AC,GONE1,BIG\t" + k
                        for k in ("A", "b,c", "\u20ac", "GONE1", "BIG")],
          "a record line per key: %r" % lines[:5])
    m = Mock("--latency-ms=0", "--fail", "E*=503")
    st, h, _, _ = m.request("/batch/A,E1")
    check(st == 503 and h.get("retry-after") == "1", "a 5xx key fails the whole batch")
    m.stop()
    m = Mock("--latency-ms=0", "--garbage", "G")
    st, _, b, _ = m.request("/batch/A,G")
    check(st == 200 and b == b"this is not json", "garbage for the whole batch")
    m.stop()


def test_arrivals():
    m = Mock("--latency-ms=0")
    t0 = time.monotonic()
    for i in range(30):
        m.request("/contract/k%d" % i)
        if i == 9:
            time.sleep(1.1)
    m.request("/nowhere")
    s = m.stats()
    took = time.monotonic() - t0
    check(sum(s["arrivals_per_second"]) == 30 and s["max_per_second"] <= 30,
          "per-second arrivals of lookups only: %r" % s)
    check(s["max_in_any_second"] == 20 or took > 2, "sliding max: %r" % s)
    m.stop()


def main():
    global BIN
    if len(sys.argv) != 2:
        print("usage: mock_selftest.py path/to/export-mock-lookup", file=sys.stderr)
        return 2
    BIN = os.path.abspath(sys.argv[1])
    for test in (test_cli, test_basic, test_custom_path, test_latency, test_auth, test_faults,
                 test_random_faults, test_record, test_stats_and_verbose, test_batch,
                 test_arrivals):
        try:
            test()
        except Exception as e:  # noqa: BLE001 - report and go on with the next test
            check(False, "%s raised %r" % (test.__name__, e))
    for m in RUNNING:
        if m.proc.poll() is None:
            check(False, "mock %r still running at the end" % (m.args,))
            m.proc.kill()
            m.proc.wait()
    shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
