"""Helpers shared by the hostile-input and security tests (test_corpus.py,
test_responses.py, test_secrets.py, test_acl.py). Stdlib and redis-py only.

The bad-job corpus lives in tests/corpus/bad/: one document per file, and
expected.json mapping each file name to its expected outcome. A document may
hold the placeholder ${PREFIX}, replaced by the test's key prefix before it is
sent (rows_key values must begin with the prefix). See tests/corpus/README.md.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import http.server

import redis

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.normpath(os.path.join(HERE, "..", "corpus", "bad"))
PREFIX_PLACEHOLDER = b"${PREFIX}"

# The limits the corpus's expectations assume (tests/corpus/README.md).
CORPUS_WORKER_ENV = {
    "EXPORT_MAX_JOB_BYTES": "430000",
    "EXPORT_MAX_ROWS": "1000",
}


class CorpusCase:
    """One document of the corpus: its file name, bytes and expectation."""

    def __init__(self, name, data, expected):
        self.name = name
        self.data = data
        self.outcome = expected["outcome"]
        self.id = expected.get("id")
        self.error_code = expected.get("error_code")
        self.error_contains = list(expected.get("error_contains", []))

    def __repr__(self):
        return "<CorpusCase %s %s %s>" % (self.name, self.outcome, self.error_code or "")


def load_corpus(prefix, directory=CORPUS_DIR):
    """Every case of the corpus, sorted by file name, with ${PREFIX} replaced."""
    with open(os.path.join(directory, "expected.json"), "rb") as f:
        expected = json.load(f)
    files = sorted(n for n in os.listdir(directory)
                   if n != "expected.json" and not n.startswith(".") and n.endswith((".json",
                                                                                     ".bin")))
    missing = sorted(set(files) - set(expected))
    stale = sorted(set(expected) - set(files))
    if missing or stale:
        raise AssertionError("tests/corpus/bad/expected.json out of step: no expectation for %s; "
                             "no file for %s" % (missing, stale))
    cases = []
    for name in files:
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        cases.append(CorpusCase(name, data.replace(PREFIX_PLACEHOLDER, prefix.encode()),
                                expected[name]))
    return cases


def dead_letter_text(doc):
    """What a P:dead entry's "job" holds for document @doc: the bytes as text, each
    maximal ill-formed UTF-8 subpart replaced by U+FFFD (Python's decoder follows
    the same Unicode practice). The worker also replaces NUL bytes, which JSON
    text can carry but a C string cannot; both forms are accepted by callers."""
    return doc.decode("utf-8", "replace")


def dead_letter_texts(doc):
    text = dead_letter_text(doc)
    return {text, text.replace("\x00", "\ufffd")}


def contains_all(text, words):
    """The words of @words that @text does not contain (case-insensitive)."""
    low = text.lower()
    return [w for w in words if w.lower() not in low]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# A redis-server of a test's own (for passwords and ACL users).

class OwnRedis:
    """A redis-server on a free loopback port in a temporary folder, nothing
    persisted. stop() ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="exw-own-redis-")
        self.port = None
        binary = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin:/usr/local/bin")
        if binary is None:
            raise AssertionError("redis-server not found")
        last = ""
        for _ in range(5):  # a port picked free may be taken before the server binds it
            self.port = free_port()
            self.log_path = os.path.join(self.dir, "redis-%d.log" % self.port)
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir] + list(extra_args),
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
            if self._wait_up():
                return
            last = self.log()
            self._kill()
        raise AssertionError("own redis-server did not start: %s" % last[-2000:])

    def _wait_up(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def url(self, user=None, password=None, db=0):
        auth = ""
        if password is not None:
            auth = "%s:%s@" % (user or "", password)
        return "redis://%s127.0.0.1:%d/%d" % (auth, self.port, db)

    def log(self):
        return harness.read_text(self.log_path)

    def _kill(self):
        harness.stop_process(self.proc)
        self._log.close()

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Small HTTP servers of a test's own (a redirector and a request counter).

class TinyHTTP:
    """A threaded HTTP server on a free loopback port. @handler(request_handler)
    returns (status, headers dict, body bytes). Every request's path and headers
    are kept in .requests."""

    def __init__(self, handler, ssl_context=None):
        outer = self
        self.requests = []
        self._lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                with outer._lock:
                    outer.requests.append((self.path, dict(self.headers.items())))
                status, headers, body = handler(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hangs up early (a capped body) is expected

        self.server = Server(("127.0.0.1", 0), H)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if ssl_context else "http", self.port)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# ---------------------------------------------------------------------------
# Test certificates, made with the openssl command.

def make_test_pki(directory):
    """A private CA and three server certificates under @directory, made with the
    openssl command (None when it is missing): {"ca": ca.pem, "good": (cert, key)
    for IP 127.0.0.1 signed by the CA, "wrong_name": (cert, key) signed by the CA
    for another name, "self_signed": (cert, key) for 127.0.0.1}."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None

    def run(*args):
        subprocess.run([openssl] + list(args), cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def ext(name, text):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=export-worker test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {"ca": os.path.join(directory, "ca.pem")}
    for name, san in [("good", "IP:127.0.0.1"), ("wrong_name", "DNS:wrong.invalid")]:
        run("req", *key, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
            ext(name + ".ext", "subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n" % san))
        out[name] = tuple(os.path.join(directory, name + e) for e in (".pem", ".key"))
    run("req", "-x509", *key, "-keyout", "self.key", "-out", "self.pem", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    out["self_signed"] = tuple(os.path.join(directory, "self" + e) for e in (".pem", ".key"))
    return out


def wait_for(predicate, timeout, interval=0.05):
    """Polls @predicate until it returns a true value (returned) or @timeout passes
    (then the last value is returned)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def limit_job(jid, **kw):
    """A one-column, one-row job, with @kw as further members."""
    d = {"id": jid, "columns": [{"header": "A", "field": "a"}], "rows": [{"a": "x"}]}
    d.update(kw)
    return d


def limit_jobs(max_bytes=None, max_rows=None):
    """The good side of each corpus limit: name -> the job (a dict, or bytes
    where its exact text matters). The document-size and row-count limits are
    settings: their jobs are there only when @max_bytes and @max_rows say
    what the worker was given (test_corpus.py sends them all to a worker,
    test_schema.py validates those the schema can see)."""
    job = limit_job
    cases = {
        "nesting-32": json.dumps(job("nesting-32"))[:-1].encode() + b', "x": ' +
        b"[" * 31 + b"]" * 31 + b"}",
        "columns-16384": json.dumps(job("columns-16384",
                                        columns=[{"header": "", "field": "a"}] * 16384),
                                    separators=(",", ":")).encode(),
        "header-255": job("header-255", columns=[{"header": "\u00e9" * 255, "field": "a"}]),
        "string-32767": job("string-32767", rows=[{"a": "\u20ac" * 32767}]),
        "sheet-31": job("sheet-31", sheet="\u00e9" * 30 + "s"),
        "format-127": job("format-127", columns=[{"header": "A", "field": "a",
                                                  "type": "number", "format": "0" * 127}],
                          rows=[{"a": 1}]),
        "width-255": job("width-255", columns=[{"header": "A", "field": "a", "width": 255}]),
        "width-small": job("width-small", columns=[{"header": "A", "field": "a",
                                                    "width": 0.01}]),
        "result-ttl-year": job("result-ttl-year", result_ttl=31536000),
        "filename-255": job("filename-255", filename="f" * 250 + ".xlsx"),
        "integer-2pow53": job("integer-2pow53", columns=[{"header": "A", "field": "a",
                                                          "type": "integer"}],
                              rows=[{"a": 2**53}, {"a": -2**53}, {"a": 1e15}]),
        "datetime-9-digits": job("datetime-9-digits",
                                 columns=[{"header": "A", "field": "a", "type": "datetime"}],
                                 rows=[{"a": "2026-01-01T00:00:00.123456789+14:00"},
                                       {"a": "9999-12-31T23:59:59.999Z"},
                                       {"a": "1900-01-01T00:00:00Z"}]),
        "unknown-members-ignored": job("unknown-members-ignored", future={"x": [1, 2]},
                                       columns=[{"header": "A", "field": "a",
                                                 "future": True}]),
        "nulls-are-absent": job("nulls-are-absent", sheet=None, filename=None,
                                result_ttl=None, on_lookup_error=None, lookup=None,
                                rows_key=None,
                                columns=[{"header": "A", "field": "a", "type": None,
                                          "format": None, "width": None}]),
        "surrogate-pair-escape": json.dumps(job("surrogate-pair-escape",
                                                rows=[{"a": "\U0001F600"}])).encode(),
    }
    if max_bytes is not None:
        exact = job("exact-bytes")
        exact["pad"] = ""
        exact["pad"] = "p" * (max_bytes - len(json.dumps(exact)))
        cases["exact-bytes"] = exact
    if max_rows is not None:
        cases["rows-max"] = job("rows-max", rows=[{"a": "r%d" % i} for i in range(max_rows)])
    return cases
