"""Shared machinery of the end-to-end tests (stdlib, redis-py and openpyxl only).

Each test_<name>.py is one ctest test, run by scripts/with-redis.sh, which
provides a throw-away redis-server in EXW_TEST_REDIS_URL. The binaries under
test come from EXW_WORKER_BIN and EXW_MOCK_BIN (tests/e2e/CMakeLists.txt).

A test method gets its own key prefix, so no test sees another's keys, and
starts the mock lookup service and workers it needs through E2ETest; whatever
it started is stopped when it ends (SIGTERM, then SIGKILL), and a worker must
have exited 0 after SIGTERM. When a test fails, the logs of every process it
started are printed after it.

Run a file alone with:
    scripts/with-redis.sh /usr/bin/python3 tests/e2e/test_basic.py [Class.method ...]
with EXW_WORKER_BIN and EXW_MOCK_BIN set to the built binaries.
"""

import ctypes
import datetime
import hashlib
import io
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
import unittest
import urllib.request
import uuid
import zipfile
import xml.etree.ElementTree as ET

import openpyxl
import redis

from resp_proxy import send_all

TERMINAL = ("succeeded", "failed", "cancelled")

UTC = datetime.timezone.utc


def env_or_die(name):
    value = os.environ.get(name)
    if not value:
        sys.stderr.write("%s is not set: run this test through ctest "
                         "(or set it by hand, see harness.py)\n" % name)
        sys.exit(2)
    return value


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# The mock lookup service's answers, computed as the mock does.

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211


def fnv1a64(data):
    h = FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) % (1 << 64)
    return h


def mock_body(key):
    """The JSON object the mock returns for @key, as Python values."""
    h = fnv1a64(key.encode("utf-8"))
    signed = datetime.date(2020, 1, 1) + datetime.timedelta(days=(h >> 40) % 2000)
    return {
        "sn": key,
        "name": "Customer-%03d" % ((h >> 32) % 1000),
        "discount": {"ratio": (h % 10000) / 10000},
        "score": (h >> 16) % 1000,
        "active": ((h >> 8) & 1) == 1,
        "signed_on": signed.isoformat(),
        "note": None,
    }


def pointer_get(doc, pointer):
    """RFC 6901: the value at @pointer in @doc, or None when there is none."""
    if pointer == "":
        return doc
    cur = doc
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and token in cur:
            cur = cur[token]
        elif isinstance(cur, list) and token.isdigit() and int(token) < len(cur):
            cur = cur[int(token)]
        else:
            return None
    return cur


# ---------------------------------------------------------------------------
# Expected cell values: what openpyxl gives back for a JSON value in a column.

def parse_date(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d")


_DT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                    r"(Z|[+-]\d{2}:\d{2})?$")


def parse_datetime(text):
    """A PROTOCOL datetime string as a naive UTC datetime, kept to the ms."""
    m = _DT_RE.match(text)
    if not m:
        raise ValueError("not a datetime: %r" % text)
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    value = datetime.datetime(y, mo, d, hh, mi, ss, micro)
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        value -= sign * offset
    return value


def expected_value(ctype, value):
    """What openpyxl should read back for JSON @value in a column of @ctype."""
    if value is None:
        return None
    if ctype == "date":
        return parse_date(value)
    if ctype == "datetime":
        return parse_datetime(value)
    if ctype == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if ctype == "string" and isinstance(value, (int, float)):
        return shortest_number_text(value)
    return value


def shortest_number_text(value):
    """A number's shortest round-trip decimal form without exponent (1e5 -> 100000)."""
    if isinstance(value, int):
        return str(value)
    if value == int(value) and abs(value) < 1e17:
        return str(int(value))
    return repr(value)


# ---------------------------------------------------------------------------
# Reading the workbook's raw XML, for what openpyxl does not tell.

_XSTRING_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def xstring_decode(text):
    """Decodes OOXML ST_Xstring escapes (_xHHHH_) as Excel does."""
    return _XSTRING_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _si_text(si):
    return "".join(t.text or "" for t in si.iter(_NS + "t"))


def raw_cells(data, sheet_index=0):
    """{coordinate: (t attribute, has formula, decoded text or raw value)} of one sheet.

    The text of string cells is decoded as Excel decodes it, from the raw XML
    (openpyxl leaves _xHHHH_ escapes as they are)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        strings = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ET.fromstring(z.read("xl/sharedStrings.xml"))
            strings = [xstring_decode(_si_text(si)) for si in root.iter(_NS + "si")]
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        rid = wb.find(_NS + "sheets")[sheet_index].get(
            "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id")
        target = None
        for rel in rels:
            if rel.get("Id") == rid:
                target = rel.get("Target")
        path = target.lstrip("/") if target.startswith("/") else "xl/" + target
        sheet = ET.fromstring(z.read(path))
    cells = {}
    for c in sheet.iter(_NS + "c"):
        t = c.get("t", "n")
        has_formula = c.find(_NS + "f") is not None
        v = c.find(_NS + "v")
        if t == "s" and v is not None:
            value = strings[int(v.text)]
        elif t == "inlineStr":
            is_ = c.find(_NS + "is")
            value = xstring_decode(_si_text(is_)) if is_ is not None else None
        else:
            value = v.text if v is not None else None
        cells[c.get("r")] = (t, has_formula, value)
    return cells


# ---------------------------------------------------------------------------
# Processes.

def _die_with_parent():
    """Runs in the child before exec: it gets SIGKILL when the test process
    dies, so nothing outlives a test run that was killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"



def proc_status_bytes(pid, field):
    """A size of process @pid from /proc/<pid>/status, in bytes: @field is
    "VmHWM" (its peak RSS), "VmPeak" (its peak address space)...; 0 when
    unreadable."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def read_text(path):
    """The text of a log file, "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def stop_process(proc, timeout=5):
    """SIGTERM, then SIGKILL after @timeout seconds; waits for the exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

class Mock:
    """One export-mock-lookup process on a free loopback port."""

    def __init__(self, binary, workdir, args=()):
        self.args = list(args)
        self.out_path = os.path.join(workdir, "mock.%s.out" % uuid.uuid4().hex[:6])
        self.log_path = self.out_path[:-4] + ".log"
        self._out = open(self.out_path, "wb")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "--port", "0"] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._log, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            with open(self.out_path, "rb") as f:
                line = f.readline().decode("utf-8", "replace")
            if line.endswith("\n") or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        m = re.match(r"listening on (http://127\.0\.0\.1:(\d+))\s*$", line)
        if not m:
            self.stop()
            raise AssertionError("mock %s did not print 'listening on http://127.0.0.1:PORT' "
                                 "within 10 s (got %r); log:\n%s"
                                 % (self.args, line, self.log()))
        self.base = m.group(1)
        self.port = int(m.group(2))

    def url(self, path="/contract/?sn={key}"):
        return self.base + path

    def command_calls(self, command):
        """How many times Redis has run @command (INFO commandstats)."""
        info = self.r.info("commandstats")
        return info.get("cmdstat_" + command.lower(), {}).get("calls", 0)

    def stats(self):
        with urllib.request.urlopen(self.base + "/_stats", timeout=5) as resp:
            return json.loads(resp.read())

    def lookups(self):
        return self.stats()["lookups"]

    def log(self):
        return read_text(self.log_path)

    def stop(self):
        stop_process(self.proc)
        self._out.close()
        self._log.close()


class Worker:
    """One export-worker process. @env is its whole EXPORT_* configuration."""

    def __init__(self, binary, env, log_path, tmpdir, args=()):
        self.env = dict(env)
        self.id = env.get("EXPORT_WORKER_ID")
        self.log_path = log_path
        self.tmpdir = tmpdir
        self.expect_clean_exit = True
        self.stop_timeout = float(env.get("EXPORT_SHUTDOWN_GRACE", "8")) + 5
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full_env.update(self.env)
        self._log = open(log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([binary] + list(args), env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        """SIGKILL, as a crash would; the harness then expects no clean exit."""
        self.expect_clean_exit = False
        self.proc.kill()
        self.proc.wait()

    def wait(self, timeout):
        """The exit status, or None if still running after @timeout seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM, wait, SIGKILL after @timeout: (exit status, seconds taken)."""
        timeout = self.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                rc = "still running %.0f s after SIGTERM (killed)" % timeout
        else:
            rc = self.proc.returncode
        self._log.close()
        return rc, time.monotonic() - t0

    def log(self):
        return read_text(self.log_path)


class Events:
    """Collects the messages of a pub/sub channel from a background thread.

    Subscribed when the constructor returns."""

    def __init__(self, r, channel):
        self.messages = []  # (monotonic seconds, raw bytes)
        self._ps = r.pubsub()
        self._ps.subscribe(channel)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            msg = self._ps.get_message(timeout=0.5)
            if msg and msg["type"] == "subscribe":
                break
        else:
            raise AssertionError("no subscribe confirmation on %s" % channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            msg = self._ps.get_message(timeout=0.05)
            if msg and msg["type"] == "message":
                self.messages.append((time.monotonic(), msg["data"]))

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._ps.close()


# ---------------------------------------------------------------------------
# The test case base.

class E2ETest(unittest.TestCase):
    """Base class: a key prefix per test, and processes stopped afterwards."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.worker_bin = env_or_die("EXW_WORKER_BIN")
        cls.mock_bin = env_or_die("EXW_MOCK_BIN")
        cls.redis_url = env_or_die("EXW_TEST_REDIS_URL")

    def setUp(self):
        self.r = redis.Redis.from_url(self.redis_url)
        name = self.id().rsplit(".", 1)[-1].replace("test_", "")[:40]
        self.prefix = "e2e-%s-%s" % (name, uuid.uuid4().hex[:8])
        self.tmp = tempfile.mkdtemp(prefix="exw-e2e-")
        self.workers = []
        self.mocks = []
        self.outside_keys = set()  # keys outside P: the test itself wrote
        self._exw_logs = []
        self._nworkers = 0
        self._at_end = []  # callables run after the workers and mocks are stopped
        self.addCleanup(self._stop_everything)

    # -- keys ---------------------------------------------------------------
    def key(self, *parts):
        return ":".join((self.prefix,) + parts)

    def status(self, jid):
        raw = self.r.hgetall(self.key("job", jid))
        return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}

    def command_calls(self, command):
        """How many times Redis has run @command (INFO commandstats)."""
        info = self.r.info("commandstats")
        return info.get("cmdstat_" + command.lower(), {}).get("calls", 0)

    def stats(self):
        raw = self.r.hgetall(self.key("stats"))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- processes ----------------------------------------------------------
    def start_mock(self, *args, latency_ms=0):
        mock = Mock(self.mock_bin, self.tmp, ["--latency-ms", str(latency_ms)] + list(args))
        self.mocks.append(mock)
        return mock

    def worker_env(self, mock=None, **overrides):
        self._nworkers += 1
        env = {
            "EXPORT_REDIS_URL": self.redis_url,
            "EXPORT_PREFIX": self.prefix,
            "EXPORT_WORKER_ID": "%s-w%d" % (re.sub(r"[^A-Za-z0-9._:-]", "", self.prefix),
                                            self._nworkers),
            "EXPORT_LOG_FORMAT": "json",
            "EXPORT_LOG_LEVEL": "info",
        }
        if mock is not None:
            env["EXPORT_SERVICE_TETHER_URL"] = mock.url()
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def start_redis_unix(self):
        """A second redis-server, on a unix socket only: its path. Stopped after
        the workers, at the end of the test."""
        sock = os.path.join(self.tmp, "redis.sock")
        log = open(os.path.join(self.tmp, "redis-unix.log"), "wb")
        proc = subprocess.Popen(
            [shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin") or "redis-server",
             "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", self.tmp],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent)

        def stop():
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        self._at_end.append(stop)
        client = redis.Redis(unix_socket_path=sock)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("redis-server on %s did not start" % sock)
                time.sleep(0.05)
        client.close()
        return sock

    def start_worker(self, mock=None, env=None, args=(), **overrides):
        """Starts a worker (against @mock's service "tether" if given).

        @overrides are EXPORT_* variables (None removes one)."""
        if env is None:
            env = self.worker_env(mock, **overrides)
        wdir = tempfile.mkdtemp(prefix="w", dir=self.tmp)
        env.setdefault("EXPORT_TMPDIR", wdir)
        log = os.path.join(self.tmp, "worker%d-%s.log" % (len(self.workers) + 1,
                                                           uuid.uuid4().hex[:6]))
        w = Worker(self.worker_bin, env, log, env["EXPORT_TMPDIR"], args)
        self.workers.append(w)
        return w

    def run_worker_once(self, args=(), env=None, timeout=10):
        """Runs the worker binary to completion: (exit status, stdout+stderr)."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update(env or {})
        p = subprocess.run([self.worker_bin] + list(args), env=full, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           preexec_fn=_die_with_parent)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def wait_registered(self, worker, timeout=5):
        """Waits until @worker is in P:workers: it has set its signal handlers by
        then (a SIGTERM before main() runs kills any program)."""
        deadline = time.monotonic() + timeout
        while worker.running() and time.monotonic() < deadline:
            try:
                if worker.id is None:
                    if time.monotonic() - worker.started > 0.5:
                        return
                elif self.r.sismember(self.key("workers"), worker.id):
                    return
            except redis.RedisError:
                return
            time.sleep(0.02)

    def _stop_everything(self):
        problems = []
        for w in self.workers:
            if w.running() and w.expect_clean_exit:
                self.wait_registered(w)
            rc, took = w.stop()
            self._exw_logs.append(("worker %s (pid %d) stderr" % (w.id, w.pid), w.log()))
            if w.expect_clean_exit and rc != 0:
                problems.append("worker %s exited %s after SIGTERM (want 0)" % (w.id, rc))
            if w.expect_clean_exit and os.path.isdir(w.tmpdir) and os.listdir(w.tmpdir):
                problems.append("worker %s left files in EXPORT_TMPDIR: %s"
                                % (w.id, sorted(os.listdir(w.tmpdir))))
        for m in self.mocks:
            m.stop()
            self._exw_logs.append(("mock %s stderr" % m.args, m.log()))
        # Nothing outside P: is ever written (PROTOCOL.md section 1).
        try:
            stray = [k.decode("utf-8", "replace") for k in self.r.scan_iter(count=1000)
                     if not k.startswith((self.prefix + ":").encode())
                     and k.decode("utf-8", "replace") not in self.outside_keys]
            if stray:
                problems.append("keys written outside the prefix %s: %s" % (self.prefix, stray))
                self.r.delete(*stray)
            for k in self.r.scan_iter(match=self.prefix + ":*", count=1000):
                self.r.delete(k)
            for k in self.outside_keys:
                self.r.delete(k)
            self.r.close()
        except redis.RedisError as e:
            problems.append("redis cleanup: %s" % e)
        for fn in reversed(self._at_end):
            fn()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("; ".join(problems))

    # -- jobs ---------------------------------------------------------------
    def enqueue(self, job, status=True, **extra_status):
        """Enqueues as PROTOCOL.md section 5 does: HSET the status, LPUSH the document.

        @job is a dict (sent as JSON) or bytes (sent as they are). Returns the
        exact bytes pushed."""
        data = job if isinstance(job, (bytes, bytearray)) else json.dumps(job).encode()
        if status:
            jid = job["id"] if isinstance(job, dict) else extra_status.pop("jid")
            mapping = {"state": "queued", "queued_at": now_ms()}
            mapping.update(extra_status)
            self.r.hset(self.key("job", jid), mapping=mapping)
        self.r.lpush(self.key("queue"), data)
        return bytes(data)

    def wait_state(self, jid, states=TERMINAL, timeout=30):
        """Polls the status every 50 ms until its state is one of @states."""
        deadline = time.monotonic() + timeout
        st = {}
        while time.monotonic() < deadline:
            st = self.status(jid)
            if st.get("state") in states:
                return st
            time.sleep(0.05)
        self.fail("job %s not in %s within %.0f s; status %r" % (jid, states, timeout, st))

    def wait_until(self, what, predicate, timeout=10, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        self.fail("timed out after %.1f s waiting for %s" % (timeout, what))

    def run_job(self, job, timeout=30, expect="succeeded"):
        self.enqueue(job)
        st = self.wait_state(job["id"], timeout=timeout)
        self.assertEqual(st.get("state"), expect,
                         "job %s: status %r" % (job["id"], st))
        return st

    def result_bytes(self, st):
        data = self.r.get(st["result_key"])
        self.assertIsNotNone(data, "no result at %s" % st["result_key"])
        return data

    def workbook(self, data):
        return openpyxl.load_workbook(io.BytesIO(data))

    def assert_left_processing(self, worker):
        """The worker's processing list is empty or absent."""
        self.assertEqual(self.r.llen(self.key("processing", worker.id)), 0,
                         "P:processing:%s still holds %r" % (
                             worker.id, self.r.lrange(self.key("processing", worker.id), 0, -1)))

    # -- cells --------------------------------------------------------------
    def assert_cell(self, cell, expected, where=""):
        """@cell holds @expected with the matching Python type (as openpyxl reads it)."""
        v = cell.value
        where = "%s %s" % (cell.coordinate, where)
        if expected is None:
            self.assertIsNone(v, "%s: want an empty cell, got %r" % (where, v))
        elif isinstance(expected, bool):
            self.assertIs(type(v), bool, "%s: want bool %r, got %r" % (where, expected, v))
            self.assertEqual(v, expected, where)
        elif isinstance(expected, str):
            self.assertIsInstance(v, str, "%s: want text %r, got %r" % (where, expected, v))
            self.assertEqual(cell.data_type, "s", "%s: %r is not a text cell" % (where, v))
            self.assertEqual(v, expected, where)
        elif isinstance(expected, datetime.datetime):
            self.assertIsInstance(v, datetime.datetime,
                                  "%s: want datetime %r, got %r" % (where, expected, v))
            self.assertLessEqual(abs(v - expected), datetime.timedelta(milliseconds=1),
                                 "%s: want %s, got %s" % (where, expected, v))
        elif isinstance(expected, (int, float)):
            self.assertTrue(isinstance(v, (int, float)) and not isinstance(v, bool),
                            "%s: want number %r, got %r" % (where, expected, v))
            self.assertEqual(cell.data_type, "n", where)
            if isinstance(expected, int):
                self.assertIsInstance(v, int, "%s: want whole %r, got %r" % (where, expected, v))
            self.assertEqual(v, expected, "%s: want %r, got %r" % (where, expected, v))
        else:
            raise TypeError("unexpected expectation %r" % (expected,))

    def assert_rows(self, ws, columns, rows, lookup_key=None, first_row=2,
                    failed_keys=()):
        """Every data cell of @ws against @rows as @columns describe them."""
        for i, row in enumerate(rows):
            for j, col in enumerate(columns):
                ctype = col.get("type", "string")
                if "lookup" in col:
                    key = row.get(lookup_key)
                    if key is None or key in failed_keys:
                        raw = None
                    else:
                        raw = pointer_get(mock_body(str(key)), col["lookup"])
                else:
                    raw = row.get(col["field"])
                self.assert_cell(ws.cell(row=first_row + i, column=j + 1),
                                 expected_value(ctype, raw),
                                 "(input row %d, column %r)" % (i, col["header"]))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# The runner: unittest, the logs of failed tests, a final count.

class _Result(unittest.TextTestResult):
    passed = 0
    failed = 0

    def startTest(self, test):
        self._bad = False
        super().startTest(test)

    def _mark(self, test):
        self._bad = True
        if not isinstance(test, unittest.TestCase):  # setUpClass and the like
            _Result.failed += 1

    def addFailure(self, test, err):
        self._mark(test)
        super().addFailure(test, err)

    def addError(self, test, err):
        self._mark(test)
        super().addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._bad = True
        super().addSubTest(test, subtest, err)

    def addUnexpectedSuccess(self, test):
        self._bad = True
        super().addUnexpectedSuccess(test)

    def stopTest(self, test):
        super().stopTest(test)
        if self._bad:
            _Result.failed += 1
            for label, text in getattr(test, "_exw_logs", []):
                tail = text[-20000:]
                self.stream.write("---- %s (%s): %d bytes%s ----\n%s\n" % (
                    test.id(), label, len(text), ", last 20000" if len(text) > 20000 else "",
                    tail))
            self.stream.flush()
        else:
            _Result.passed += 1


def main():
    env_or_die("EXW_WORKER_BIN")
    env_or_die("EXW_MOCK_BIN")
    env_or_die("EXW_TEST_REDIS_URL")
    module = sys.modules["__main__"]
    loader = unittest.TestLoader()
    if len(sys.argv) > 1:
        suite = loader.loadTestsFromNames(sys.argv[1:], module)
    else:
        suite = loader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Result)
    result = runner.run(suite)
    print("%d passed, %d failed" % (_Result.passed, _Result.failed))
    sys.stdout.flush()
    sys.exit(0 if result.wasSuccessful() and _Result.failed == 0 else 1)


# ---------------------------------------------------------------------------
# Robustness helpers (kill, restart and fault tests, and scripts/chaos.py).

def lookup_job_doc(jid, keys, extra_columns=(), **members):
    """A job with one row per entry of @keys, looked up in service "tether"
    (several rows may share a key). Columns: the key, then three lookups."""
    doc = {
        "id": jid,
        "lookup": {"service": "tether", "key": "sn"},
        "columns": [{"header": "SN", "field": "sn"},
                    {"header": "Row", "field": "n", "type": "integer"},
                    {"header": "Name", "lookup": "/name"},
                    {"header": "Ratio", "lookup": "/discount/ratio", "type": "number"},
                    {"header": "Signed", "lookup": "/signed_on", "type": "date"}]
        + list(extra_columns),
        "rows": [{"sn": k, "n": i} for i, k in enumerate(keys)],
    }
    doc.update(members)
    return doc


def workbook_problems(data, job, status=None, failed_keys=()):
    """Everything wrong with workbook @data as the result of @job (a dict): a
    list of sentences, empty when every cell is right. Used where unittest's
    assertions are not at hand (scripts/chaos.py); checks the header row, the
    row count, every data cell, and result_sha256/result_bytes of @status."""
    problems = []
    if status is not None:
        if status.get("result_sha256") != sha256(data):
            problems.append("result_sha256 %r does not match the stored bytes (%s)"
                            % (status.get("result_sha256"), sha256(data)))
        if status.get("result_bytes") != str(len(data)):
            problems.append("result_bytes %r, stored %d" % (status.get("result_bytes"), len(data)))
    try:
        ws = openpyxl.load_workbook(io.BytesIO(data)).active
    except Exception as e:  # noqa: BLE001 - any failure to read is the finding
        return problems + ["not a readable workbook: %s" % e]
    columns, rows = job["columns"], job["rows"]
    lookup_key = (job.get("lookup") or {}).get("key")
    if ws.max_row != len(rows) + 1:
        problems.append("%d sheet rows, want %d" % (ws.max_row, len(rows) + 1))
    for j, col in enumerate(columns):
        v = ws.cell(row=1, column=j + 1).value
        if v != col["header"]:
            problems.append("header %d is %r, want %r" % (j + 1, v, col["header"]))
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            ctype = col.get("type", "string")
            if "lookup" in col:
                key = row.get(lookup_key)
                raw = (None if key is None or key in failed_keys
                       else pointer_get(mock_body(str(key)), col["lookup"]))
            else:
                raw = row.get(col["field"])
            want = expected_value(ctype, raw)
            got = ws.cell(row=i + 2, column=j + 1).value
            ok = got == want and type(got) is type(want) or (
                isinstance(want, float) and isinstance(got, (int, float))
                and not isinstance(got, bool) and got == want) or (
                isinstance(want, datetime.datetime) and isinstance(got, datetime.datetime)
                and abs(got - want) <= datetime.timedelta(milliseconds=1))
            if not ok:
                problems.append("row %d column %r: %r, want %r" % (i, col["header"], got, want))
        if len(problems) > 20:
            problems.append("...")
            break
    return problems


def read_record(path):
    """The mock's --record file: a list of (raw target, key)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [tuple(line.split("\t", 1)) if "\t" in line else (line, "") for line in lines]


class RecordTail:
    """Timestamps the lines the mock appends to its --record file (the file
    has no times of its own): polls it every 5 ms from a thread. .lines is a
    list of (monotonic seconds, key)."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self._pos = 0
        self._partial = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return
        if not chunk:
            return
        now = time.monotonic()
        self._pos += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        for line in complete:
            key = line.split(b"\t", 1)[1] if b"\t" in line else b""
            self.lines.append((now, key.decode("utf-8", "replace")))

    def _run(self):
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(0.005)

    def times(self, key):
        return [t for t, k in self.lines if k == key]

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._poll()


def upload_keys(r, prefix):
    """{upload key: PTTL} of every partial upload under @prefix, by either
    name: P:upload:<worker>:<id> or the older P:result:<id>:upload:<worker>."""
    keys = set(r.scan_iter(match=prefix + ":upload:*", count=1000))
    keys |= set(r.scan_iter(match=prefix + ":result:*:upload:*", count=1000))
    return {k.decode("utf-8", "replace"): r.pttl(k) for k in keys}


def upload_sets(r, prefix):
    """{key: sorted members} of every P:uploads:<worker> set under @prefix."""
    return {k.decode("utf-8", "replace"): sorted(m.decode("utf-8", "replace")
                                                 for m in r.smembers(k))
            for k in r.scan_iter(match=prefix + ":uploads:*", count=1000)}


def redis_cli_bin():
    return shutil.which("redis-cli", path="/usr/bin:/usr/sbin:/bin") or "redis-cli"


class RedisServer:
    """A redis-server of one's own on a loopback port, with AOF persistence in
    its own folder, that can be shut down and started again on the same port
    and folder (the throw-away server of with-redis.sh keeps nothing)."""

    def __init__(self, workdir, appendfsync="always", port=None):
        self.dir = os.path.join(workdir, "redis-%s" % uuid.uuid4().hex[:6])
        os.makedirs(self.dir)
        self.appendfsync = appendfsync
        self.port = port or free_port()
        self.proc = None
        self.starts = 0
        self._log = None

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def client(self, **kwargs):
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self, timeout=10):
        """Starts the server (again) and waits until it answers PING with its
        data loaded."""
        if self._log is None:
            self._log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin") or "redis-server",
             "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
             "--maxmemory-policy", "noeviction", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            preexec_fn=_die_with_parent)
        self.starts += 1
        c = self.client(socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if c.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("redis-server on port %d did not come up; log:\n%s"
                                         % (self.port, self.log()[-4000:]))
                time.sleep(0.05)
        finally:
            c.close()

    def shutdown(self, timeout=10):
        """SHUTDOWN through redis-cli, as an operator would: the AOF is
        flushed; waits until the process is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run([redis_cli_bin(), "-h", "127.0.0.1", "-p", str(self.port), "shutdown"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("redis-server did not stop within %d s of SHUTDOWN" % timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def scaled(n, minimum=1):
    """@n, or a third of it (at least @minimum) when EXW_SANITIZE is set:
    sanitizer builds run several times slower."""
    if os.environ.get("EXW_SANITIZE"):
        return max(minimum, n // 3)
    return n


class RobustTest(E2ETest):
    """E2ETest with helpers for the robustness tests."""

    def use_own_redis(self, appendfsync="always"):
        """Starts a RedisServer with AOF and points the test (its client, the
        workers it starts and its teardown) at it. It is stopped after the
        workers, at the end of the test."""
        server = RedisServer(self.tmp, appendfsync=appendfsync)
        server.start()
        self._at_end.append(server.stop)
        self.r.close()
        self.r = server.client(socket_timeout=5)
        self.redis_url = server.url()
        self.own_redis = server
        return server

    def assert_workbook(self, st, job, failed_keys=()):
        """The job's result is there, matches result_sha256 and result_bytes,
        and holds exactly the header row and every row of @job, cell by cell."""
        self.assertEqual(st.get("state"), "succeeded", "job %s: %r" % (job["id"], st))
        data = self.result_bytes(st)
        problems = workbook_problems(data, job, st, failed_keys)
        self.assertEqual(problems, [], "job %s: workbook wrong" % job["id"])
        return data

    def upload_keys(self):
        """{upload key: PTTL} of every partial upload: P:upload:<worker>:<id>,
        and the older name P:result:<id>:upload:<worker>."""
        return upload_keys(self.r, self.prefix)

    def upload_sets(self):
        """{key: members} of every P:uploads:<worker> set (a worker's
        in-flight upload keys)."""
        return upload_sets(self.r, self.prefix)

    def assert_no_stray_upload_keys(self):
        """No upload key is left without a TTL (a killed worker's partial
        upload must expire by itself)."""
        bad = {k: t for k, t in self.upload_keys().items() if t is None or t < 0}
        self.assertEqual(bad, {}, "upload keys without a TTL")

    def assert_no_upload_leftovers(self):
        """No upload key at all (either name) and no P:uploads:* set: what
        every ending that is not success, a put-back and a recovery leave."""
        self.assertEqual(self.upload_keys(), {}, "upload keys left")
        self.assertEqual(self.upload_sets(), {}, "P:uploads:* sets left")

    def processing_lists(self):
        """{key: length} of every non-empty P:processing:* list."""
        out = {}
        for k in self.r.scan_iter(match=self.key("processing", "*"), count=1000):
            n = self.r.llen(k)
            if n:
                out[k.decode()] = n
        return out

    def assert_queues_empty(self):
        self.assertEqual(self.r.llen(self.key("queue")), 0,
                         "P:queue still holds %r" % self.r.lrange(self.key("queue"), 0, 5))
        self.assertEqual(self.processing_lists(), {}, "processing lists not empty")

    def wait_all(self, jids, timeout, states=TERMINAL):
        """Waits until every job of @jids is in @states: {jid: status}."""
        deadline = time.monotonic() + timeout
        pending = list(jids)
        done = {}
        while pending and time.monotonic() < deadline:
            pipe = self.r.pipeline(transaction=False)
            for jid in pending:
                pipe.hgetall(self.key("job", jid))
            try:
                results = pipe.execute()
            except redis.RedisError:
                time.sleep(0.2)
                continue
            still = []
            for jid, raw in zip(pending, results):
                st = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
                if st.get("state") in states:
                    done[jid] = st
                else:
                    still.append(jid)
            pending = still
            if pending:
                time.sleep(0.1)
        if pending:
            self.fail("%d job(s) not in %s within %.0f s, e.g. %s: %r; queue %d, processing %r"
                      % (len(pending), states, timeout, pending[0],
                         self.status(pending[0]), self.r.llen(self.key("queue")),
                         self.processing_lists()))
        return done

    def log_lines(self, worker, pattern):
        """Lines of @worker's stderr matching regular expression @pattern."""
        rx = re.compile(pattern, re.I)
        return [line for line in worker.log().splitlines() if rx.search(line)]


class TcpProxy:
    """A loopback TCP proxy to 127.0.0.1:@port, to cut one worker off from
    Redis (a network partition) while others still reach it. cut() closes
    every connection and refuses new ones by closing them at once; mend()
    lets them through again. Threads only; stop() ends them."""

    def __init__(self, port):
        self.upstream = port
        self._lsock = socket.socket()
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self._lsock.settimeout(0.1)
        self.port = self._lsock.getsockname()[1]
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks = set()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except (socket.timeout, OSError):
                continue
            if self._cut.is_set():
                client.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.update((client, up))
            for a, b in ((client, up), (up, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()

    def _going(self):
        return not self._stop.is_set() and not self._cut.is_set()

    def _pipe(self, src, dst):
        src.settimeout(0.2)
        try:
            while self._going():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                send_all(dst, data, self._going)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._socks.discard(src)
                self._socks.discard(dst)

    def cut(self):
        self._cut.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def mend(self):
        self._cut.clear()

    def stop(self):
        self._stop.set()
        self.cut()
        self._threads[0].join(2)
        self._lsock.close()
