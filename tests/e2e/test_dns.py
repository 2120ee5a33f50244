"""Name resolution of the lookup services (http.c, main.c): the pool's threads
share one DNS cache, and the worker puts each service's host name in it before
it takes its first job. So a job asks the resolver nothing, however many pool
threads it uses, and a resolver that stalls right after start-up (as a
container network's may) holds back the worker's first job, never that job's
requests, which would time out and be retried.

The worker runs in a mount namespace of its own whose /etc/resolv.conf names
a DNS server of this test on a loopback address: it answers one made-up name,
counts the questions for it, and can hold its answers back."""

import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest, Worker, lookup_job_doc  # noqa: E402

NAME = "tether.exw-test"
TYPE_A = 1


class FakeDns:
    """A DNS server on UDP port 53 of a free loopback address. It answers the
    A question for NAME with 127.0.0.1, any other question about NAME with no
    record, and every other name with NXDOMAIN. a_questions counts the A
    questions for NAME. While held, questions are kept unanswered until
    release()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for last in range(53, 254):
            try:
                self.sock.bind(("127.0.0.%d" % last, 53))
                break
            except OSError:
                continue
        else:
            raise OSError("no loopback address has UDP port 53 free")
        self.address = self.sock.getsockname()[0]
        self.sock.settimeout(0.05)
        self.a_questions = 0
        self._held = []
        self._hold = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def hold(self):
        with self._lock:
            self._hold = True

    def release(self):
        with self._lock:
            self._hold = False

    def count(self):
        with self._lock:
            return self.a_questions

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                data = None
            with self._lock:
                if data is not None:
                    self._held.append((data, peer))
                    if self._question(data)[1:] == (NAME, TYPE_A):
                        self.a_questions += 1
                ready = [] if self._hold else self._held
                if not self._hold:
                    self._held = []
            for q, who in ready:
                answer = self._answer(q)
                if answer is not None:
                    self.sock.sendto(answer, who)

    @staticmethod
    def _question(data):
        """(end of the question section, name, type), or (None, None, None)."""
        if len(data) < 12:
            return None, None, None
        at, labels = 12, []
        while at < len(data) and data[at] != 0:
            n = data[at]
            labels.append(data[at + 1:at + 1 + n].decode("ascii", "replace"))
            at += 1 + n
        if at + 5 > len(data):
            return None, None, None
        qtype = struct.unpack("!H", data[at + 1:at + 3])[0]
        return at + 5, ".".join(labels).lower(), qtype

    def _answer(self, data):
        end, name, qtype = self._question(data)
        if end is None:
            return None
        qid = data[:2]
        if name != NAME:
            return qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + data[12:end]
        if qtype != TYPE_A:
            return qid + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + data[12:end]
        record = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + data[12:end] + record


class Dns(RobustTest):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare(1) for a private /etc/resolv.conf")
        try:
            self.dns = FakeDns()
        except OSError as e:
            self.skipTest("cannot serve DNS on loopback: %s" % e)
        self.addCleanup(self.dns.stop)
        self.resolv = os.path.join(self.tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:20 attempts:1\n" % self.dns.address)

    def start_named_worker(self, mock, **overrides):
        """A worker whose service TETHER is @mock under the name NAME, resolved
        only by the test's DNS server."""
        env = self.worker_env(None, **overrides)
        env["EXPORT_SERVICE_TETHER_URL"] = "http://%s:%d/contract/?sn={key}" % (NAME, mock.port)
        env["EXPORT_TMPDIR"] = tempfile.mkdtemp(prefix="w", dir=self.tmp)
        log = os.path.join(self.tmp, "worker-%s.log" % env["EXPORT_WORKER_ID"])
        # unshare and sh exec the worker in turn: it keeps their pid.
        w = Worker("/usr/bin/unshare", env, log, env["EXPORT_TMPDIR"],
                   ["--mount", "--propagation", "private", "/bin/sh", "-c",
                    'mount --bind "$1" /etc/resolv.conf && exec "$2"', "sh", self.resolv,
                    self.worker_bin])
        self.workers.append(w)
        return w

    def ready(self, worker):
        return self.log_lines(worker, r'"msg":"ready:')

    def test_the_pool_asks_the_resolver_once(self):
        mock = self.start_mock(latency_ms=20)
        w = self.start_named_worker(mock, EXPORT_POOL_SIZE=32)
        self.wait_until("the worker is ready", lambda: self.ready(w), timeout=30)
        self.assertEqual(self.dns.count(), 1, "questions before the first job")
        for n in range(2):
            keys = ["D%d-%03d" % (n, i) for i in range(200)]
            job = lookup_job_doc("dns-%d" % n, keys)
            self.assert_workbook(self.run_job(job, timeout=60), job)
        s = self.stats()
        self.assertEqual((s.get("lookups"), s.get("lookup_requests")), (400, 400), s)
        self.assertEqual(self.dns.count(), 1,
                         "32 pool threads, 400 requests: one question for %s" % NAME)

    def test_a_stalled_resolver_holds_the_first_job_not_its_requests(self):
        mock = self.start_mock(latency_ms=20)
        self.dns.hold()
        w = self.start_named_worker(mock, EXPORT_POOL_SIZE=32,
                                    EXPORT_SERVICE_TETHER_TIMEOUT_MS=1000)
        keys = ["S-%03d" % i for i in range(64)]
        job = lookup_job_doc("stalled", keys)
        self.enqueue(job)
        self.wait_until("the worker asks for %s" % NAME, lambda: self.dns.count() >= 1)
        # Two and a half request timeouts: a request sent now would have failed.
        time.sleep(2.5)
        self.assertTrue(w.running())
        self.assertEqual(self.status(job["id"]).get("state"), "queued",
                         "a job was taken before the service's name resolved")
        self.assertFalse(self.ready(w))
        self.assertTrue(self.log_lines(w, "does not resolve yet"), w.log())
        self.dns.release()
        self.wait_until("the worker is ready", lambda: self.ready(w), timeout=30)
        asked = self.dns.count()
        st = self.wait_state(job["id"], timeout=60)
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assert_workbook(st, job)
        s = self.stats()
        self.assertEqual((s.get("lookups"), s.get("lookup_requests")), (64, 64),
                         "the first job's requests were retried: %r" % s)
        self.assertEqual(self.dns.count(), asked, "the job asked the resolver again")


if __name__ == "__main__":
    harness.main()
