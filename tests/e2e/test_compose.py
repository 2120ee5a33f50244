"""The container setup matches what the worker needs (docs/operations.md):
docker-compose.yml's services and Redis settings, a scalable worker service
stopped within Docker's 10 s, the Dockerfile built with the same dependency
script as the tests, a non-root user, a stop signal and a health check; and
the image's HEALTHCHECK command, run here with sh and redis-cli, tells a live
worker from a stopped one."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.parse

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER_STOP_TIMEOUT_S = 10
DEFAULT_GRACE_S = 8


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def compose_duration(text):
    """Compose's duration syntax (10s, 1m30s, 500ms, 2h) in seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    total, pos = 0.0, 0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text):
        if m.start() != pos:
            raise ValueError("bad duration %r" % text)
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError("bad duration %r" % text)
    return total


def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = item.partition("=")
            out[k] = v
        return out
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_words(value):
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments)] of the final stage and all stages, with
    continuation lines joined and comments dropped."""
    joined, cur = [], ""
    for line in text.splitlines():
        if not cur and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            joined.append(cur.strip())
        cur = ""
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    stages, stage = [], []
    for ins in out:
        if ins[0] == "FROM" and stage:
            stages.append(stage)
            stage = []
        stage.append(ins)
    stages.append(stage)
    return out, stages[-1]


class Compose(RobustTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.compose = yaml.safe_load(read("docker-compose.yml"))
        cls.services = cls.compose.get("services") or {}
        cls.dockerfile = read("Dockerfile")
        cls.all_ins, cls.final = dockerfile_instructions(cls.dockerfile)

    def test_services(self):
        self.assertLessEqual({"redis", "lookup", "worker"}, set(self.services),
                             sorted(self.services))

    def test_redis_persistent_and_not_evicting(self):
        redis_svc = self.services["redis"]
        words = command_words(redis_svc.get("command"))
        text = " ".join(words)
        self.assertRegex(text, r"--appendonly\s+yes", "AOF off: a restart loses the queue")
        self.assertRegex(text, r"--maxmemory-policy\s+noeviction",
                         "without noeviction Redis may drop queued jobs")
        self.assertTrue(redis_svc.get("volumes"), "the AOF is not on a volume")
        for p in redis_svc.get("ports") or []:
            loopback = (p.get("host_ip") in ("127.0.0.1", "::1") if isinstance(p, dict)
                        else re.match(r"^(127\.0\.0\.1|\[::1\]):", str(p)) is not None)
            self.assertTrue(loopback, "Redis published beyond the host's loopback: %r" % p)

    def test_worker_is_scalable_and_stops_in_time(self):
        w = self.services["worker"]
        self.assertNotIn("container_name", w, "a fixed container_name prevents --scale")
        self.assertFalse(w.get("ports"), "a host port prevents --scale: %r" % w.get("ports"))
        env = env_dict(w)
        grace = float(env.get("EXPORT_SHUTDOWN_GRACE") or DEFAULT_GRACE_S)
        self.assertIn("stop_grace_period", w,
                      "Docker's default 10 s applies; say it, next to the grace")
        stop = compose_duration(w["stop_grace_period"])
        self.assertGreater(stop, grace, "stop_grace_period %s s is not above "
                           "EXPORT_SHUTDOWN_GRACE %s s" % (stop, grace))
        # docs/operations.md: the platform's stop timeout at least 2 s above
        # the grace (aborting the lookups and deregistering take up to 1 s).
        self.assertGreaterEqual(stop, grace + 2, "stop_grace_period %s s, grace %s s"
                                % (stop, grace))
        self.assertLessEqual(stop, DOCKER_STOP_TIMEOUT_S,
                             "stop_grace_period above Docker's usual 10 s")
        # The image's STOPSIGNAL must be one the worker stops cleanly on.
        sig = w.get("stop_signal") or dict(self.final).get("STOPSIGNAL", "SIGTERM")
        self.assertIn(sig.upper().replace("SIG", ""), ("TERM", "INT"), sig)

    def test_worker_environment_points_at_the_services(self):
        w = self.services["worker"]
        env = env_dict(w)
        self.assertIn("EXPORT_REDIS_URL", env)
        url = urllib.parse.urlsplit(env["EXPORT_REDIS_URL"])
        self.assertEqual(url.scheme, "redis", env["EXPORT_REDIS_URL"])
        self.assertEqual(url.hostname, "redis", "EXPORT_REDIS_URL does not name the redis "
                         "service: %s" % env["EXPORT_REDIS_URL"])
        self.assertEqual(url.port or 6379, 6379)
        services = {k: v for k, v in env.items()
                    if re.fullmatch(r"EXPORT_SERVICE_[A-Z0-9]+_URL", k)}
        self.assertTrue(services, "no EXPORT_SERVICE_<NAME>_URL: jobs with a lookup would fail")
        lookup_words = command_words(self.services["lookup"].get("entrypoint")) + \
            command_words(self.services["lookup"].get("command"))
        port = "8080"
        if "--port" in lookup_words:
            port = lookup_words[lookup_words.index("--port") + 1]
        for k, v in services.items():
            self.assertIn("{key}", v, "%s has no {key}" % k)
            u = urllib.parse.urlsplit(v.replace("{key}", "KEY"))
            if u.hostname == "lookup":
                self.assertEqual(str(u.port or 80), port, "%s: the mock listens on %s" % (k, port))
                self.assertIn("0.0.0.0", lookup_words,
                              "the mock listens on loopback only inside its container")
        deps = w.get("depends_on") or {}
        self.assertIn("redis", deps)
        for k, v in env.items():
            if re.search(r"AUTH$|PASSWORD", k):
                self.fail("a secret in docker-compose.yml's environment: %s (use _AUTH_FILE)" % k)

    def test_dockerfile(self):
        runs = " ".join(arg for ins, arg in self.all_ins if ins == "RUN")
        self.assertIn("install-deps.sh", runs,
                      "the image is not built with scripts/install-deps.sh")
        copies = " ".join(arg for ins, arg in self.all_ins if ins == "COPY")
        self.assertIn("scripts/install-deps.sh", copies)
        final = dict(self.final)  # last of each instruction wins
        users = [arg for ins, arg in self.final if ins == "USER"]
        self.assertTrue(users, "the final stage runs as root (no USER)")
        self.assertNotIn(users[-1].split(":")[0], ("root", "0"), users[-1])
        self.assertIn("HEALTHCHECK", final, "no HEALTHCHECK")
        self.assertNotRegex(final["HEALTHCHECK"], r"^NONE\b")
        self.assertIn("STOPSIGNAL", final, "no STOPSIGNAL")
        self.assertIn(final["STOPSIGNAL"].upper().replace("SIG", ""), ("TERM", "INT"))
        self.assertIn("export-worker", final.get("ENTRYPOINT", "") + final.get("CMD", ""))

    def test_test_script_uses_install_deps(self):
        text = read("scripts/test.sh")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        self.assertRegex(code, r"(^|\s)(\./)?scripts/install-deps\.sh\b",
                         "scripts/test.sh does not run scripts/install-deps.sh")
        self.assertTrue(os.access(os.path.join(ROOT, "scripts/install-deps.sh"), os.X_OK))

    def healthcheck(self, extra_env):
        """Runs the image's HEALTHCHECK command with sh: its exit status."""
        cmd = dict(self.final)["HEALTHCHECK"]
        m = re.search(r"\bCMD\s+(.*)$", cmd, re.S)
        self.assertTrue(m, cmd)
        shell = m.group(1).strip()
        if shell.startswith("["):  # exec form
            argv = json.loads(shell)
        else:
            argv = ["/bin/sh", "-c", shell]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        env.update(extra_env)
        env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def test_healthcheck_command_against_a_live_worker(self):
        env = {"EXPORT_REDIS_URL": self.redis_url, "EXPORT_PREFIX": self.prefix}
        rc, out = self.healthcheck(env)
        self.assertNotEqual(rc, 0, "healthy without any worker: %s" % out)
        # A worker with the default id (host-pid-random), as in the image.
        w = self.start_worker(EXPORT_WORKER_ID=None, EXPORT_HEARTBEAT_TTL_MS=2000)
        self.wait_until("registered", lambda: self.r.scard(self.key("workers")) == 1)
        rc, out = self.healthcheck(env)
        self.assertEqual(rc, 0, "a live worker is reported unhealthy: %s" % out)
        # With EXPORT_WORKER_ID set, it checks that worker's heartbeat.
        wid = self.r.smembers(self.key("workers")).pop().decode()
        rc, out = self.healthcheck(dict(env, EXPORT_WORKER_ID=wid))
        self.assertEqual(rc, 0, out)
        rc, out = self.healthcheck(dict(env, EXPORT_WORKER_ID=wid + "-other"))
        self.assertNotEqual(rc, 0, out)
        # Killed: unhealthy once its heartbeat has expired.
        w.kill9()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.r.exists(self.key("worker", wid)):
            time.sleep(0.2)
        rc, out = self.healthcheck(env)
        self.assertNotEqual(rc, 0, "a dead worker is reported healthy: %s" % out)


if __name__ == "__main__":
    harness.main()
