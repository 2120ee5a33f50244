"""exportctl (PROTOCOL.md section 5) against a real worker, Redis and mock
lookup service: every command, its output and its exit status; and, in a
real pseudo-terminal (tmux), the progress bar of watch and the full-screen
top, as a person sees them."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import E2ETest, lookup_job_doc  # noqa: E402

CTL = harness.env_or_die("EXW_CTL_BIN")

OK, FAILED, USAGE, CANCELLED, NOT_FOUND, REDIS, TIMEOUT = 0, 1, 2, 3, 4, 5, 6


def small_job(jid, nrows=3):
    return {
        "id": jid,
        "columns": [{"header": "N", "field": "n", "type": "integer"},
                    {"header": "Name", "field": "name"}],
        "rows": [{"n": i, "name": "row %d" % i} for i in range(nrows)],
    }


class Ctl(E2ETest):

    def ctl(self, *args, stdin=None, env=None, timeout=60, cwd=None):
        """Runs exportctl: (exit status, stdout, stderr)."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update({"EXPORT_REDIS_URL": self.redis_url, "EXPORT_PREFIX": self.prefix})
        full.update(env or {})
        p = subprocess.run([CTL] + list(args), input=stdin, env=full, cwd=cwd or self.tmp,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode(
            "utf-8", "replace")

    def write_doc(self, doc, name="job.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    # -- enqueue, watch, status, fetch --------------------------------------
    def test_enqueue_wait_status_fetch(self):
        mock = self.start_mock(latency_ms=20)
        self.start_worker(mock, EXPORT_POOL_SIZE=4)
        job = lookup_job_doc("ctl-1", ["K-%03d" % i for i in range(60)])
        rc, out, err = self.ctl("enqueue", self.write_doc(job), "--wait", "--timeout", "60")
        self.assertEqual(rc, OK, err)
        lines = out.splitlines()
        self.assertEqual(lines[0], "ctl-1")
        # Not a terminal: plain lines, one a second at most, then the end.
        self.assertRegex(lines[-1], r"^ctl-1 succeeded in .*: 60 rows, 60 lookups \(0 failed\)")
        self.assertNotIn("\r", out)
        self.assertNotIn("\033", out)

        rc, out, err = self.ctl("status", "ctl-1")
        self.assertEqual(rc, OK, err)
        self.assertRegex(out, r"(?m)^state +succeeded$")
        self.assertRegex(out, r"(?m)^rows +60 of 60 written$")
        self.assertRegex(out, r"(?m)^lookups +60 of 60 done, 0 failed$")
        rc, out, err = self.ctl("status", "ctl-1", "--json")
        self.assertEqual(rc, OK, err)
        st = json.loads(out)
        self.assertEqual(st["state"], "succeeded")
        self.assertIsInstance(st["rows_written"], int)
        self.assertEqual(st["lookups_done"], 60)
        self.assertIsInstance(st["result_sha256"], str)

        rc, out, err = self.ctl("fetch", "ctl-1")
        self.assertEqual(rc, OK, err)
        path = os.path.join(self.tmp, "ctl-1.xlsx")
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data, self.r.get(self.key("result", "ctl-1")))
        self.assertEqual(harness.workbook_problems(data, job), [])
        self.assertIn("sha256 checked", out)
        # To a pipe with -o -, byte for byte.
        rc, out_bytes = self.ctl_bytes("fetch", "ctl-1", "-o", "-")
        self.assertEqual(rc, OK)
        self.assertEqual(out_bytes, data)

    def ctl_bytes(self, *args):
        full = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        full.update({"EXPORT_REDIS_URL": self.redis_url, "EXPORT_PREFIX": self.prefix})
        p = subprocess.run([CTL] + list(args), env=full, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stdout

    def test_fetch_refuses_tampered_and_unfinished(self):
        self.start_worker()
        rc, out, err = self.ctl("enqueue", "-", "--wait", stdin=json.dumps(small_job("t-1")).encode())
        self.assertEqual(rc, OK, err)
        self.r.setrange(self.key("result", "t-1"), 100, b"XX")
        rc, out, err = self.ctl("fetch", "t-1", "-o", "out.xlsx")
        self.assertEqual(rc, FAILED)
        self.assertIn("does not match its result_sha256", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out.xlsx")))
        self.assertEqual([f for f in os.listdir(self.tmp) if ".part" in f], [])
        rc, out, err = self.ctl("fetch", "nope")
        self.assertEqual(rc, NOT_FOUND)
        self.r.hset(self.key("job", "q-1"), mapping={"state": "queued"})
        rc, out, err = self.ctl("fetch", "q-1")
        self.assertEqual(rc, NOT_FOUND)
        self.assertIn("has no workbook: it is queued", err)

    def test_enqueue_refuses_as_the_worker_would(self):
        bad = small_job("bad-1")
        bad["columns"][0]["type"] = "decimal"
        rc, out, err = self.ctl("enqueue", self.write_doc(bad))
        self.assertEqual(rc, USAGE)
        self.assertEqual(out, "")
        self.assertIn("refused, a worker would fail it with invalid_job", err)
        # Nothing was written.
        self.assertEqual(self.r.llen(self.key("queue")), 0)
        self.assertEqual(self.r.exists(self.key("job", "bad-1")), 0)
        # The message is the worker's own, word for word.
        self.start_worker()
        self.enqueue(bad)
        st = self.wait_state("bad-1")
        self.assertEqual(st["error_code"], "invalid_job")
        self.assertIn(st["error"], err)
        # Not JSON, and no usable id: the dead letters.
        rc, out, err = self.ctl("enqueue", "-", stdin=b"{\"id\": 7}")
        self.assertEqual(rc, USAGE)
        self.assertIn("put it in the dead letters", err)
        rc, out, err = self.ctl("enqueue", self.write_doc("[1, 2"))
        self.assertEqual(rc, USAGE)
        # Over EXPORT_MAX_JOB_BYTES.
        rc, out, err = self.ctl("enqueue", self.write_doc(small_job("big", 200)),
                                env={"EXPORT_MAX_JOB_BYTES": "1024"})
        self.assertEqual(rc, USAGE)
        self.assertIn("too_large", err)
        rc, out, err = self.ctl("enqueue", os.path.join(self.tmp, "missing.json"))
        self.assertEqual(rc, USAGE)
        self.assertIn("cannot open", err)

    def test_enqueue_services_and_made_up_id(self):
        doc = lookup_job_doc("svc-1", ["A"])
        doc["lookup"]["service"] = "other"
        env = {"EXPORT_SERVICE_TETHER_URL": "http://127.0.0.1:9/x/{key}"}
        rc, out, err = self.ctl("enqueue", self.write_doc(doc), env=env)
        self.assertEqual(rc, USAGE)
        self.assertIn('no lookup service "other" is configured', err)
        # Without any service in its environment, exportctl cannot tell.
        rc, out, err = self.ctl("enqueue", self.write_doc(doc), "--json")
        self.assertEqual(rc, OK, err)
        self.assertEqual(json.loads(out), {"id": "svc-1"})
        # A document without an id gets one, as its first member.
        job = small_job("x")
        del job["id"]
        rc, out, err = self.ctl("enqueue", self.write_doc(job))
        self.assertEqual(rc, OK, err)
        jid = out.strip()
        self.assertRegex(jid, r"^exp-\d{8}-\d{6}-[0-9a-f]{6}$")
        pushed = self.r.lindex(self.key("queue"), 0)
        self.assertEqual(json.loads(pushed)["id"], jid)
        self.assertTrue(pushed.startswith(b'{"id":"%s",' % jid.encode()))
        self.assertEqual(self.status(jid)["state"], "queued")
        self.assertEqual(self.status(jid)["attempts"], "0")
        # The same id again while it waits: refused, nothing pushed.
        rc, out, err = self.ctl("enqueue", self.write_doc(small_job("svc-1")))
        self.assertEqual(rc, USAGE)
        self.assertIn("job svc-1 is queued already", err)
        self.assertEqual(self.r.llen(self.key("queue")), 2)
        # Once it has ended, it runs again on a fresh status.
        self.start_worker()
        self.wait_state(jid)
        self.r.hset(self.key("job", jid), "cancel", "1")
        job["id"] = jid
        rc, out, err = self.ctl("enqueue", self.write_doc(job), "--wait")
        self.assertEqual(rc, OK, err + out)
        self.assertEqual(self.status(jid)["attempts"], "1")

    # -- cancel and waiting ---------------------------------------------------
    def test_cancel_watch_timeouts(self):
        mock = self.start_mock(latency_ms=300)
        self.start_worker(mock, EXPORT_POOL_SIZE=1)
        rc, out, err = self.ctl("enqueue", self.write_doc(
            lookup_job_doc("slow-1", ["S-%02d" % i for i in range(40)])))
        self.assertEqual(rc, OK, err)
        self.wait_state("slow-1", ("running",))
        t0 = time.monotonic()
        rc, out, err = self.ctl("watch", "slow-1", "--timeout", "1.5")
        self.assertEqual(rc, TIMEOUT, out + err)
        self.assertGreater(time.monotonic() - t0, 1.4)
        self.assertIn("gave up waiting for job slow-1 after 1.5 s; it is running", err)
        rc, out, err = self.ctl("cancel", "slow-1", "--wait", "--timeout", "30")
        self.assertEqual(rc, CANCELLED, out + err)
        self.assertIn("asked job slow-1 to cancel", out)
        self.assertRegex(out, r"slow-1 cancelled after")
        rc, out, err = self.ctl("cancel", "slow-1")
        self.assertEqual(rc, OK)
        self.assertIn("has ended already (cancelled)", out)
        rc, out, err = self.ctl("watch", "slow-1")
        self.assertEqual(rc, CANCELLED)
        rc, out, err = self.ctl("cancel", "nope")
        self.assertEqual(rc, NOT_FOUND)
        self.assertEqual(self.r.exists(self.key("job", "nope")), 0)
        rc, out, err = self.ctl("watch", "nope")
        self.assertEqual(rc, NOT_FOUND)
        # A failed job: exit 1 with its error.
        self.workers[0].stop()
        mock2 = self.start_mock("--fail", "F-*=404")
        self.start_worker(mock2)
        rc, out, err = self.ctl("enqueue", self.write_doc(lookup_job_doc("f-1", ["F-1"])),
                                "--wait")
        self.assertEqual(rc, FAILED, out + err)
        self.assertIn("f-1 failed (lookup_failed)", out)
        rc, out, err = self.ctl("fetch", "f-1")
        self.assertEqual(rc, FAILED)

    # -- the fleet ----------------------------------------------------------
    def test_queue_workers_stats(self):
        mock = self.start_mock(latency_ms=200)
        w = self.start_worker(mock, EXPORT_POOL_SIZE=1)
        self.wait_registered(w)
        for jid in ("a-1", "a-2"):
            self.ctl("enqueue", self.write_doc(lookup_job_doc(jid, ["Q-%02d" % i for i in range(30)])))
        self.wait_state("a-1", ("running",))
        self.wait_until("heartbeat names a-1",
                        lambda: self.r.hget(self.key("worker", w.id), "jobs") == b"a-1")
        rc, out, err = self.ctl("queue")
        self.assertEqual(rc, OK, err)
        self.assertRegex(out, r"(?m)^queued +1$")
        self.assertRegex(out, r"(?m)^running +1 on 1 worker$")
        self.assertIn("a-1 running", out)
        rc, out, err = self.ctl("queue", "--json")
        q = json.loads(out)
        self.assertEqual(q["queued"], 1)
        self.assertEqual(q["workers"][0]["jobs"][0]["id"], "a-1")
        rc, out, err = self.ctl("workers")
        self.assertEqual(rc, OK, err)
        self.assertIn(w.id, out)
        self.assertIn("a-1 running", out)
        rc, out, err = self.ctl("workers", "--json")
        ws = json.loads(out)
        self.assertEqual(ws["workers"][0]["id"], w.id)
        self.assertEqual(ws["workers"][0]["pid"], w.pid)
        self.assertEqual(ws["expired"], [])
        # A registered worker whose heartbeat is gone.
        self.r.sadd(self.key("workers"), "ghost-1")
        rc, out, err = self.ctl("workers")
        self.assertIn("heartbeat expired", out)
        self.assertIn("ghost-1", out)
        self.r.srem(self.key("workers"), "ghost-1")
        self.ctl("cancel", "a-1")
        self.ctl("cancel", "a-2")
        self.wait_state("a-2")
        rc, out, err = self.ctl("stats", "--json")
        self.assertEqual(json.loads(out), {k: v for k, v in self.stats().items()} | {
            k: 0 for k in ("jobs_succeeded", "jobs_failed", "jobs_dead", "lookup_errors",
                           "bytes_out", "lookups", "lookup_requests", "jobs_cancelled")
            if k not in self.stats()})
        rc, out, err = self.ctl("stats")
        self.assertRegex(out, r"(?m)^jobs_cancelled +2$")

    def test_dead_list_requeue_purge(self):
        w = self.start_worker()
        self.wait_registered(w)
        self.r.lpush(self.key("queue"), b"this is not json")
        self.r.lpush(self.key("queue"), json.dumps({"id": "d-1", "columns": []}).encode())
        self.r.hset(self.key("job", "d-2"), mapping={"state": "queued", "attempts": "3"})
        self.enqueue(small_job("d-2"), status=False)
        self.wait_until("three dead letters", lambda: self.r.llen(self.key("dead")) == 2
                        and self.status("d-2").get("state") == "failed")
        self.wait_until("d-1 failed", lambda: self.status("d-1").get("state") == "failed")
        rc, out, err = self.ctl("dead")
        self.assertEqual(rc, OK, err)
        lines = out.splitlines()
        self.assertRegex(lines[0], r"#\s+FAILED AT\s+ID\s+ERROR")
        self.assertEqual(len(lines), 3, out)
        self.assertRegex(lines[1], r"^\s+1 .* d-2 .*too_many_attempts|^\s+1 .* d-2 ")
        self.assertRegex(lines[2], r"^\s+2 .* - ")
        rc, out, err = self.ctl("dead", "--json")
        entries = json.loads(out)
        self.assertEqual([e["n"] for e in entries], [1, 2])
        self.assertEqual(entries[0]["id"], "d-2")
        self.assertEqual(entries[1]["job"], "this is not json")
        # Requeue the job out of attempts: its status starts again.
        w.stop()
        rc, out, err = self.ctl("dead", "--requeue", "1")
        self.assertEqual(rc, OK, err)
        self.assertIn("job d-2 is queued again", out)
        self.assertEqual(self.r.llen(self.key("dead")), 1)
        self.assertEqual(self.r.lindex(self.key("queue"), 0), json.dumps(small_job("d-2")).encode())
        st = self.status("d-2")
        self.assertEqual((st["state"], st["attempts"]), ("queued", "0"))
        self.assertNotIn("error", st)
        rc, out, err = self.ctl("dead", "--requeue", "5")
        self.assertEqual(rc, NOT_FOUND)
        w2 = self.start_worker()
        self.wait_state("d-2")
        self.assertEqual(self.status("d-2")["state"], "succeeded")
        w2.stop()
        rc, out, err = self.ctl("dead", "--purge")
        self.assertEqual(rc, OK, err)
        self.assertIn("removed 1 dead letter", out)
        self.assertEqual(self.r.exists(self.key("dead")), 0)
        rc, out, err = self.ctl("dead")
        self.assertEqual(out.strip(), "no dead letters")

    # -- usage ----------------------------------------------------------------
    def test_usage_help_and_unreachable_redis(self):
        rc, out, err = self.ctl("--help")
        self.assertEqual(rc, OK)
        for cmd in ("enqueue", "status", "watch", "fetch", "cancel", "queue", "workers", "dead",
                    "stats", "top"):
            self.assertIn("  " + cmd, out)
            rc, out2, err2 = self.ctl(cmd, "--help")
            self.assertEqual(rc, OK, err2)
            self.assertTrue(out2.startswith("Usage: exportctl " + cmd), out2)
            self.assertIn("Exit status:", out2)
        for args in ((), ("frobnicate",), ("status",), ("status", "a", "b"), ("queue", "--wait"),
                     ("watch", "x", "--timeout", "soon"), ("dead", "--requeue", "0"),
                     ("dead", "--requeue", "1", "--purge"), ("cancel", "x", "--timeout", "3")):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, USAGE, "%r: %s" % (args, err))
            self.assertTrue(err, args)
        rc, out, err = self.ctl("status", "x", env={"EXPORT_REDIS_URL": "redis://127.0.0.1:1/0"})
        self.assertEqual(rc, REDIS)
        self.assertIn("cannot connect to Redis", err)
        rc, out, err = self.ctl("status", "x", env={"EXPORT_REDIS_URL": "http://nope"})
        self.assertEqual(rc, USAGE)
        # The password never shows.
        rc, out, err = self.ctl("queue", "--redis-url", "redis://:s3cr3t-pw@127.0.0.1:1/0")
        self.assertEqual(rc, REDIS)
        self.assertNotIn("s3cr3t-pw", out + err)
        # Flags before the command work as well as after it.
        rc, out, err = self.ctl("--prefix", self.prefix, "stats", "--json")
        self.assertEqual(rc, OK, err)


class Terminal(E2ETest):
    """watch and top in a real pseudo-terminal: a tmux server of the test's
    own, its panes read back with capture-pane."""

    def setUp(self):
        super().setUp()
        if shutil.which("tmux") is None:
            self.skipTest("tmux is not installed (scripts/install-deps.sh installs it)")
        self.sock = "exw-%s" % uuid.uuid4().hex[:8]
        self.addCleanup(lambda: subprocess.run(["tmux", "-L", self.sock, "kill-server"],
                                               stderr=subprocess.DEVNULL))

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10).stdout.decode()

    def run_in_pane(self, command, width=120, height=20):
        """Runs @command in a new session of its own (killing a server's last
        session stops the server, which races with the next new-session)."""
        self.session = "t%d" % getattr(self, "nsessions", 0)
        self.nsessions = getattr(self, "nsessions", 0) + 1
        env = "EXPORT_REDIS_URL=%s EXPORT_PREFIX=%s" % (self.redis_url, self.prefix)
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                  "env TERM=xterm %s %s; echo EXIT=$?; sleep 600" % (env, command))

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def test_watch_draws_one_line(self):
        mock = self.start_mock(latency_ms=100)
        self.start_worker(mock, EXPORT_POOL_SIZE=2)
        job = lookup_job_doc("tty-1", ["T-%03d" % i for i in range(60)])
        path = os.path.join(self.tmp, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        self.run_in_pane("%s enqueue %s --wait" % (CTL, path))
        bars = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            s = self.screen()
            if "EXIT=" in s:
                break
            lines = [ln for ln in s.splitlines() if ln.strip()]
            if len(lines) >= 2 and "running" in lines[1]:
                bars.append(lines)
            time.sleep(0.3)
        final = [ln for ln in self.screen().splitlines() if ln.strip()]
        self.assertTrue(bars, "no progress bar seen")
        for lines in bars:
            # The id, then one bar line redrawn in place: never a second one
            # ("starting" until the worker has counted the rows).
            self.assertEqual(len(lines), 2, lines)
            self.assertRegex(lines[1], r"^tty-1 running +\d+% \[[#.]+\] (starting|rows \d+/60  "
                                       r"lookups \d+/60)")
        self.assertTrue(any("lookups/s  ETA" in lines[1] for lines in bars), bars)
        self.assertEqual(final[0], "tty-1")
        self.assertRegex(final[1], r"^tty-1 succeeded in .*: 60 rows, 60 lookups \(0 failed\)")
        self.assertEqual(final[2], "EXIT=0")
        # A terminal never gets the workbook.
        self.run_in_pane("%s fetch tty-1 -o -" % CTL)
        self.wait_until("fetch ended", lambda: "EXIT=" in self.screen())
        self.assertIn("will not write a workbook to a terminal", self.screen())
        self.assertIn("EXIT=2", self.screen())

    def test_top_shows_the_fleet_and_quits(self):
        mock = self.start_mock(latency_ms=200)
        w = self.start_worker(mock, EXPORT_POOL_SIZE=1)
        self.wait_registered(w)
        self.enqueue(lookup_job_doc("top-1", ["P-%02d" % i for i in range(40)]))
        self.r.lpush(self.key("dead"), json.dumps(
            {"job": "{\"id\":\"gone-1\"}", "error": "too_many_attempts: started 3 times",
             "failed_at": harness.now_ms()}))
        self.wait_state("top-1", ("running",))
        for key, alt in (("q", None), ("C-c", None)):
            self.run_in_pane(CTL + " top", width=160, height=30)
            screen = self.wait_until("top drew the job", lambda: (
                lambda s: s if "top-1" in s and "rows" in s else None)(self.screen()))
            self.assertEqual(self.tmux("display", "-p", "-t", self.session, "#{alternate_on}").strip(), "1")
            self.assertIn("export-worker fleet  prefix %s" % self.prefix, screen)
            self.assertRegex(screen, r"queued 0 +running 1 +workers 1 live +dead 1")
            self.assertIn(w.id, screen)
            self.assertRegex(screen, r"top-1 +\[[#.]{20}\] +\d+%  rows \d+/40  lookups \d+/40")
            self.assertRegex(screen, r"1  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  gone-1 +too_many")
            self.assertIn("q or Ctrl-C quits", screen)
            self.tmux("send-keys", "-t", self.session, key)
            self.wait_until("top quit", lambda: "EXIT=" in self.screen())
            # The terminal is as it was: off the alternate screen, the
            # shell's output where it was.
            self.assertEqual(self.tmux("display", "-p", "-t", self.session, "#{alternate_on}").strip(), "0")
            self.assertIn("EXIT=0", self.screen())


if __name__ == "__main__":
    harness.main()
