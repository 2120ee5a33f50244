"""TLS to Redis through a local tunnel (docs/operations.md#tls-to-redis).

Debian 12's hiredis has no TLS, so a worker reaches a Redis that requires TLS
through Debian's stunnel in client mode beside it. Here: a private CA, a
server certificate and a client certificate made with openssl at test time;
redis-server with TLS only (--port 0 --tls-port) and client certificates
required (--tls-auth-clients yes); stunnel in client mode with the client
certificate; the worker pointed at stunnel's local port in plain text. A real
job succeeds and its workbook is checked cell by cell. Connections without
the client certificate, in plain text, or through a tunnel that trusts
another CA are refused.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest, _die_with_parent, free_port, read_text  # noqa: E402


def which(name):
    return shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin") or name


def run(argv, cwd):
    p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(argv), p.returncode,
                                                      p.stdout.decode("utf-8", "replace")))


def make_ca(d, name):
    """A self-signed CA: (cert path, key path)."""
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    run([which("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return crt, key


def make_cert(d, name, ca, ext):
    """A certificate for @name signed by @ca with the extensions @ext: (cert, key)."""
    key, csr, crt = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt"))
    extfile = os.path.join(d, name + ".ext")
    with open(extfile, "w") as f:
        f.write(ext)
    run([which("openssl"), "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name], d)
    run([which("openssl"), "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", extfile], d)
    os.chmod(key, 0o600)
    return crt, key


def wait_listening(port, proc, what, log_path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s is not listening on %d (exit %s); log:\n%s"
                         % (what, port, proc.poll(), read_text(log_path)[-4000:]))


class TlsTunnel(E2ETest):

    def setUp(self):
        super().setUp()
        d = self.pki = os.path.join(self.tmp, "pki")
        os.makedirs(d)
        self.ca = make_ca(d, "test-ca")
        self.other_ca = make_ca(d, "other-ca")
        self.server = make_cert(d, "redis-server", self.ca,
                                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth\n")
        self.client = make_cert(d, "export-worker", self.ca, "extendedKeyUsage=clientAuth\n")
        self.tls_port = self.start_tls_redis()

    def spawn(self, argv, name):
        log_path = os.path.join(self.tmp, name + ".log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=_die_with_parent)

        def stop():
            harness.stop_process(proc)
            log.close()
            self._exw_logs.append((name, read_text(log_path)))
        self._at_end.append(stop)
        return proc, log_path

    def start_tls_redis(self):
        port = free_port()
        proc, log_path = self.spawn(
            [which("redis-server"), "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
             "--tls-cert-file", self.server[0], "--tls-key-file", self.server[1],
             "--tls-ca-cert-file", self.ca[0], "--tls-auth-clients", "yes",
             "--save", "", "--appendonly", "no", "--dir", self.tmp,
             "--maxmemory-policy", "noeviction"], "redis-server-tls")
        wait_listening(port, proc, "redis-server --tls-port", log_path)
        return port

    def start_stunnel(self, name, client_cert=True, ca=None):
        """stunnel in client mode: plain text on a local port, TLS to Redis.
        Returns the local port."""
        port = free_port()
        conf = os.path.join(self.tmp, name + ".conf")
        lines = [
            "foreground = yes",
            "pid =",
            "debug = info",
            "[redis]",
            "client = yes",
            "accept = 127.0.0.1:%d" % port,
            "connect = 127.0.0.1:%d" % self.tls_port,
            "verifyChain = yes",
            "CAfile = %s" % (ca or self.ca[0]),
            "checkHost = localhost",
        ]
        if client_cert:
            lines += ["cert = %s" % self.client[0], "key = %s" % self.client[1]]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        proc, log_path = self.spawn([which("stunnel4"), conf], name)
        wait_listening(port, proc, "stunnel " + name, log_path)
        return port

    def tls_client(self, **ssl):
        return redis.Redis(host="127.0.0.1", port=self.tls_port, ssl=True,
                           ssl_ca_certs=self.ca[0], socket_timeout=5,
                           socket_connect_timeout=5, **ssl)

    def refused(self, client):
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as e:
            return str(e) or type(e).__name__
        finally:
            client.close()
        return None

    def test_job_through_the_tunnel(self):
        # The server itself: TLS with the client certificate works.
        direct = self.tls_client(ssl_certfile=self.client[0], ssl_keyfile=self.client[1])
        self.assertTrue(direct.ping())
        direct.close()

        local = self.start_stunnel("stunnel-client")
        # The test talks to Redis through the same tunnel as the worker.
        self.r.close()
        self.r = redis.Redis(host="127.0.0.1", port=local, socket_timeout=10)
        self.assertTrue(self.r.ping())
        mock = self.start_mock(latency_ms=20)
        w = self.start_worker(mock, EXPORT_REDIS_URL="redis://127.0.0.1:%d/0" % local)
        self.wait_registered(w, timeout=10)
        keys = ["TLS-%03d" % i for i in range(40)]
        job = harness.lookup_job_doc("tls-1", keys)
        st = self.run_job(job, timeout=60)
        data = self.result_bytes(st)
        self.assertEqual(st.get("result_sha256"), harness.sha256(data))
        problems = harness.workbook_problems(data, job, st)
        self.assertFalse(problems, problems)
        self.assertEqual(st.get("worker"), w.id)
        # Every connection the worker made reached Redis over TLS: the
        # server has no plain-text port at all.
        conf = self.r.config_get("*port")
        self.assertEqual(conf.get("port"), "0", conf)
        self.assertEqual(conf.get("tls-port"), str(self.tls_port), conf)

    def test_without_the_client_certificate_refused(self):
        why = self.refused(self.tls_client())
        self.assertIsNotNone(why, "a TLS connection without a client certificate was accepted")
        # In plain text, on the TLS port.
        why = self.refused(redis.Redis(host="127.0.0.1", port=self.tls_port, socket_timeout=5))
        self.assertIsNotNone(why, "a plain-text connection to the TLS port was accepted")
        # Through a tunnel that has no client certificate: the worker's
        # connection is refused, and it does not get as far as registering.
        bare = self.start_stunnel("stunnel-no-cert", client_cert=False)
        why = self.refused(redis.Redis(host="127.0.0.1", port=bare, socket_timeout=5))
        self.assertIsNotNone(why, "a tunnel without the client certificate got through")
        # Through a tunnel that trusts another CA: it refuses the server.
        wrong = self.start_stunnel("stunnel-other-ca", ca=self.other_ca[0])
        why = self.refused(redis.Redis(host="127.0.0.1", port=wrong, socket_timeout=5))
        self.assertIsNotNone(why, "a tunnel accepted a server certificate of another CA")
        # A worker behind the tunnel without the certificate never gets in.
        direct = self.tls_client(ssl_certfile=self.client[0], ssl_keyfile=self.client[1])
        w = self.start_worker(EXPORT_REDIS_URL="redis://127.0.0.1:%d/0" % bare)
        time.sleep(3)
        self.assertEqual(direct.scard(self.key("workers")), 0,
                         "a worker registered through a tunnel without the client certificate")
        direct.close()
        if not w.running():
            w.expect_clean_exit = False  # it gave up on Redis: that is as good


if __name__ == "__main__":
    harness.main()
