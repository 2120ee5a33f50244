"""Secrets never leak: the Redis password, a service's Authorization value
(EXPORT_SERVICE_<NAME>_AUTH, and in another run _AUTH_FILE) and a password in
a service URL appear in no log line (debug level, text and json formats), no
status hash, no dead letter, no event, no statistic, no result, no other key,
no --help text and no configuration error message, whichever way jobs fail.

The worker runs against a redis-server of this test's own, with a password set
at run time (CONFIG SET requirepass). The mock requires the Authorization value
(--auth), so a job that succeeds proves the header was sent.
"""

import base64
import io
import json
import os
import sys
import time
import urllib.parse
import uuid
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402
import corpus_util  # noqa: E402


class Secrets(E2ETest):

    def setUp(self):
        super().setUp()
        tag = uuid.uuid4().hex[:12]
        self.redis_pw = "RedisPw-%s-x" % tag
        self.auth = "Bearer AuthTok-%s-y" % tag
        self.wrong_auth = "Bearer WrongTok-%s-z" % tag
        self.url_pw = "UrlPw-%s-w" % tag
        self.secrets = [self.redis_pw, self.auth, self.wrong_auth, self.url_pw]
        self.own = corpus_util.OwnRedis()
        self._at_end.append(self.own.stop)
        c = self.own.client()
        c.config_set("requirepass", self.redis_pw)
        c.close()
        self.r.close()
        # Everything of the harness (status, stats, run_job, Events) now uses it.
        self.r = self.own.client(password=self.redis_pw)
        self.assertTrue(self.r.ping())
        self.checked = []  # (what, text) searched for the secrets

    # -- looking for the secrets ------------------------------------------------
    def forms(self):
        """Each secret as it could show up: as is, percent-encoded, in base64 (a
        Basic Authorization header of the URL's user and password)."""
        out = {}
        for s in self.secrets:
            out[s] = s
            token = s.split(" ", 1)[-1]
            out[token] = s
            out[urllib.parse.quote(s, safe="")] = s
        for user in ("user", ""):
            b64 = base64.b64encode(("%s:%s" % (user, self.url_pw)).encode()).decode()
            out[b64] = self.url_pw
        return out

    def search(self, what, data):
        if isinstance(data, bytes):
            text = data.decode("utf-8", "replace")
        else:
            text = str(data)
        self.checked.append((what, len(text)))
        found = [(secret, form) for form, secret in self.forms().items() if form in text]
        for secret, form in found:
            i = text.find(form)
            self.leaks.append("%s: %r (as %r) in ...%s..." % (
                what, secret, form, text[max(0, i - 60):i + len(form) + 20]))

    def search_redis(self):
        """Every key of the database, whatever its type, and inside every result."""
        for key in self.r.scan_iter(count=1000):
            kind = self.r.type(key).decode()
            name = key.decode("utf-8", "replace")
            self.search("key name " + name, key)
            if kind == "string":
                value = self.r.get(key)
                self.search("string " + name, value)
                if value and value[:2] == b"PK":
                    with zipfile.ZipFile(io.BytesIO(value)) as z:
                        for part in z.namelist():
                            self.search("%s, part %s" % (name, part), z.read(part))
            elif kind == "hash":
                self.search("hash " + name, json.dumps(
                    {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                     for k, v in self.r.hgetall(key).items()}))
            elif kind == "list":
                for i, v in enumerate(self.r.lrange(key, 0, -1)):
                    self.search("list %s[%d]" % (name, i), v)
            elif kind == "set":
                self.search("set " + name, b" ".join(self.r.smembers(key)))

    # -- the runs -----------------------------------------------------------------
    def start_mocks(self):
        mock = self.start_mock("--auth", self.auth, "--fail", "N*=404", "--fail", "E*=500",
                               "--slow", "S*=1500", "--slow", "J*=5000", "--garbage", "G*",
                               "--redirect", "M*")
        return mock

    def env_for(self, mock, log_format, auth_from_file):
        env = self.worker_env(
            mock,
            EXPORT_REDIS_URL=self.own.url(password=self.redis_pw),
            EXPORT_LOG_LEVEL="debug", EXPORT_LOG_FORMAT=log_format,
            EXPORT_JOB_TIMEOUT=3,
            EXPORT_SERVICE_TETHER_TIMEOUT_MS=500, EXPORT_SERVICE_TETHER_RETRIES=1,
            EXPORT_SERVICE_WRONG_URL=mock.url(), EXPORT_SERVICE_WRONG_AUTH=self.wrong_auth,
            EXPORT_SERVICE_WRONG_RETRIES=1,
            EXPORT_SERVICE_INURL_URL="http://user:%s@127.0.0.1:%d/contract/?sn={key}" % (
                self.url_pw, mock.port),
            EXPORT_SERVICE_INURL_RETRIES=1,
            EXPORT_SERVICE_SLOW_URL=mock.url(), EXPORT_SERVICE_SLOW_TIMEOUT_MS=10000,
            EXPORT_SERVICE_SLOW_RETRIES=0)
        for name in ("TETHER", "SLOW"):
            if auth_from_file:
                path = self.write_file(name.lower() + ".auth", self.auth + "\n")
                os.chmod(path, 0o600)
                env["EXPORT_SERVICE_%s_AUTH_FILE" % name] = path
            else:
                env["EXPORT_SERVICE_%s_AUTH" % name] = self.auth
        return env

    def job(self, jid, keys, service="tether", on_error="fail"):
        return {"id": jid, "on_lookup_error": on_error,
                "lookup": {"service": service, "key": "k"},
                "columns": [{"header": "K", "field": "k"}, {"header": "Name", "lookup": "/name"}],
                "rows": [{"k": k} for k in keys]}

    def run_every_failure(self, tag, mock, env):
        worker = self.start_worker(env=env)
        self.wait_registered(worker)
        events = harness.Events(self.r, self.key("events"))
        try:
            # Succeeds only if the mock got the right Authorization header.
            st = self.run_job(self.job(tag + "-ok", ["OK-1", "OK-2"]))
            self.assertEqual(st.get("lookups_failed"), "0", st)
            outcomes = {}
            for name, keys, service, want in [
                    ("401", ["OK-1"], "wrong", "lookup_failed"),
                    ("404", ["N-1"], "tether", "lookup_failed"),
                    ("500", ["E-1"], "tether", "lookup_failed"),
                    ("timeout", ["S-1"], "tether", "lookup_failed"),
                    ("garbage", ["G-1"], "tether", "lookup_failed"),
                    ("redirect", ["M-1"], "tether", "lookup_failed"),
                    ("url-password", ["OK-1"], "inurl", "lookup_failed"),
                    ("job-timeout", ["J-1"], "slow", "timeout")]:
                st = self.run_job(self.job("%s-%s" % (tag, name), keys, service), timeout=20,
                                  expect="failed")
                self.assertEqual(st.get("error_code"), want, st)
                outcomes[name] = st.get("error")
            # Invalid, too many attempts, dead letters.
            bad = self.job(tag + "-invalid", ["OK-1"])
            bad["columns"][0]["type"] = "money"
            self.assertEqual(self.run_job(bad, expect="failed").get("error_code"), "invalid_job")
            self.enqueue(self.job(tag + "-attempts", ["OK-1"]), attempts=5)
            st = self.wait_state(tag + "-attempts")
            self.assertEqual(st.get("error_code"), "too_many_attempts", st)
            self.r.lpush(self.key("queue"), b"not json at all " + tag.encode())
            self.r.lpush(self.key("queue"), b'{"id": "bad id ' + tag.encode() + b'"}')
            self.wait_until("dead letters", lambda: self.r.llen(self.key("queue")) == 0)
            # Cancelled before it started, and while it ran.
            self.enqueue(self.job(tag + "-cancel-early", ["OK-1"]), cancel=1)
            self.assertEqual(self.wait_state(tag + "-cancel-early").get("state"), "cancelled")
            self.enqueue(self.job(tag + "-cancel", ["J-%d" % i for i in range(5)], "slow"))
            self.wait_state(tag + "-cancel", states=("running",))
            self.r.hset(self.key("job", tag + "-cancel"), "cancel", 1)
            self.assertEqual(self.wait_state(tag + "-cancel").get("state"), "cancelled")
            # The Authorization value reached the mock: the ok job proves it; the
            # wrong one was refused.
            by_status = mock.stats().get("by_status", {})
            self.assertGreaterEqual(by_status.get("401", 0), 1, by_status)
            time.sleep(0.3)
        finally:
            events.stop()
        self.assertTrue(worker.running())
        rc, _ = worker.stop()
        self.workers.remove(worker)
        self.assertEqual(rc, 0)
        self.search("worker stderr (%s)" % tag, worker.log())
        self._exw_logs.append(("worker %s stderr" % tag, worker.log()))
        for i, (_, msg) in enumerate(events.messages):
            self.search("event %d (%s)" % (i, tag), msg)
        self.assertGreater(len(events.messages), 10)
        return outcomes

    def test_no_secret_leaks_anywhere(self):
        self.leaks = []
        mock = self.start_mocks()
        out1 = self.run_every_failure("text", mock, self.env_for(mock, "text", False))
        out2 = self.run_every_failure("json", mock, self.env_for(mock, "json", True))
        self.search_redis()
        # What the worker prints before it runs: --help.
        env = self.env_for(mock, "text", False)
        rc, out = self.run_worker_once(["--help"], env=env)
        self.assertEqual(rc, 0)
        self.search("--help", out)
        # A wrong Redis password at run time: the worker keeps retrying and says why.
        w = self.start_worker(env=dict(env, EXPORT_REDIS_URL=self.own.url(
            password=self.redis_pw + "-not")))
        time.sleep(2)
        self.assertTrue(w.running())
        w.stop()
        self.workers.remove(w)
        self.assertRegex(w.log(), r"WRONGPASS|invalid username-password|AUTH")
        self.search("worker stderr (wrong Redis password)", w.log())
        print("\nsearched %d places (%d bytes) for %d secrets in %d forms" % (
            len(self.checked), sum(n for _, n in self.checked), len(self.secrets),
            len(self.forms())))
        print("errors seen: %s" % json.dumps(dict(list(out1.items())[:3]), indent=None)[:300])
        self.assertEqual(self.leaks, [], "secrets leaked:\n" + "\n".join(self.leaks))
        self.assertTrue(out2)

    def test_bad_configuration_holding_secrets(self):
        """Each bad setting that holds a secret ends the worker with status 2 and
        an error that names the setting and what is wrong, never the secret."""
        self.leaks = []
        mock = self.start_mock()
        env = self.env_for(mock, "text", False)
        bad = {
            "bad port": "redis://u:%s@127.0.0.1:99999/0" % self.redis_pw,
            "bad db": "redis://u:%s@127.0.0.1:%d/x" % (self.redis_pw, self.own.port),
            "query": "redis://u:%s@127.0.0.1:%d/0?password=%s" % (
                self.redis_pw, self.own.port, self.redis_pw),
            "bad escape": "redis://u:%s%%zz@127.0.0.1:%d/0" % (self.redis_pw, self.own.port),
            "no colon": "redis://%s@127.0.0.1:%d/0" % (self.redis_pw, self.own.port),
            "no host": "redis://u:%s@/0" % self.redis_pw,
            "tls": "rediss://u:%s@127.0.0.1:%d/0" % (self.redis_pw, self.own.port),
            "scheme": "http://u:%s@127.0.0.1:%d/0" % (self.redis_pw, self.own.port),
            "unix relative": "unix://u:%s@relative.sock?db=0" % self.redis_pw,
            "space": "redis://u:%s @127.0.0.1:%d/0" % (self.redis_pw, self.own.port),
        }
        config_problems = []
        for what, url in bad.items():
            e = dict(env, EXPORT_REDIS_URL=url)
            rc, out = self.run_config(e)
            if rc != 2 or "EXPORT_REDIS_URL" not in out:
                config_problems.append("%s: want exit 2 naming EXPORT_REDIS_URL, got %s: %.160s"
                                       % (what, rc, (out.strip().splitlines() or [""])[0]))
            self.search("configuration error (%s)" % what, out)
        for what, extra in {
                "service url without host": {"EXPORT_SERVICE_BAD_URL":
                                             "http://u:%s@/c/{key}" % self.url_pw},
                "service url without key": {"EXPORT_SERVICE_BAD_URL":
                                            "http://u:%s@127.0.0.1/c/" % self.url_pw},
                "service url with space": {"EXPORT_SERVICE_BAD_URL":
                                           "http://u:%s @127.0.0.1/c/{key}" % self.url_pw},
                "auth and auth file": {"EXPORT_SERVICE_TETHER_AUTH_FILE": "/nonexistent"},
                "auth with a newline": {"EXPORT_SERVICE_TETHER_AUTH": self.auth + "\nX: y"},
                "auth too long": {"EXPORT_SERVICE_TETHER_AUTH": self.auth * 3000},
                "auth without url": {"EXPORT_SERVICE_LONE_AUTH": self.wrong_auth},
                "auth file of two lines": {"EXPORT_SERVICE_TETHER_AUTH": None,
                                           "EXPORT_SERVICE_TETHER_AUTH_FILE":
                                           self.write_file("two", self.auth + "\n" +
                                                           self.wrong_auth + "\n")},
                "bad flag value": {"EXPORT_POOL_SIZE": "x" + self.redis_pw}}.items():
            e = dict(env)
            for k, v in extra.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
            rc, out = self.run_config(e)
            if rc != 2:
                config_problems.append("%s: want exit 2, got %s: %.160s" % (
                    what, rc, (out.strip().splitlines() or [""])[0]))
            if what != "bad flag value":  # that one is not a secret's place
                self.search("configuration error (%s)" % what, out)
        self.assertEqual(self.leaks, [], "secrets leaked:\n" + "\n".join(self.leaks))
        self.assertEqual(config_problems, [], "bad settings not refused:\n" +
                         "\n".join(config_problems))

    def run_config(self, env):
        """Runs the worker with @env for at most 3 s: (exit status or "started",
        its output)."""
        try:
            return self.run_worker_once(env=env, timeout=3)
        except Exception as e:  # subprocess.TimeoutExpired: it started and was killed
            out = getattr(e, "output", None) or b""
            return "started (killed after 3 s)", out.decode("utf-8", "replace")

    def write_file(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path


if __name__ == "__main__":
    harness.main()
