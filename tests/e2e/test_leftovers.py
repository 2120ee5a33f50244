"""What a worker killed with SIGKILL leaves behind is cleaned up: its
temporary workbook (EXPORT_TMPDIR/export-*.xlsx) by the next worker that
starts on the same folder, which sweeps files whose owner is dead (it
checks an flock on each) and spares a live owner's; its partial upload
(P:upload:<worker>:<id>, listed in P:uploads:<worker>; or the older
P:result:<id>:upload:<worker>) by the recovery of its job. The job itself
runs again and succeeds.

The job has 300,000 rows and no lookups, so that packing the workbook takes
a noticeable time; the upload is slowed through resp_proxy.RespProxy (each
chunk write held 0.4 s). An upload key's TTL is at most the job's remaining
deadline (EXPORT_JOB_TIMEOUT) plus about a minute."""

import fcntl
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RobustTest  # noqa: E402
from resp_proxy import RespProxy, writes_key  # noqa: E402

TTL_MS = 2000
ROWS = 300000
JOB_TIMEOUT_S = 120


def big_job(jid):
    return {"id": jid,
            "columns": [{"header": "Ref", "field": "ref"},
                        {"header": "N", "field": "n", "type": "integer"},
                        {"header": "Group", "field": "g"}],
            "rows": [{"ref": "R%07d" % i, "n": i, "g": "G-%03d" % (i % 997)}
                     for i in range(ROWS)]}


def workbooks(tmpdir):
    """{path: inode} of export-* files in @tmpdir."""
    out = {}
    for path in glob.glob(os.path.join(tmpdir, "export-*")):
        try:
            out[path] = os.stat(path).st_ino
        except OSError:
            pass
    return out


class Leftovers(RobustTest):

    def check_job(self, jid, job, t_kill_ms):
        """The job, recovered, ends once and right; nothing is left."""
        st = self.wait_state(jid, timeout=2 * TTL_MS / 1000.0 + 60)
        print("  run again %.1f s after the kill, ended %.1f s after it"
              % ((int(st.get("started_at", 0)) - t_kill_ms) / 1000.0,
                 (int(st.get("finished_at", 0)) - t_kill_ms) / 1000.0))
        self.assertEqual(st.get("state"), "succeeded", st)
        self.assertEqual(st.get("rows_written"), str(ROWS), st)
        data = self.result_bytes(st)
        self.assertEqual(st.get("result_sha256"), harness.sha256(data))
        # Every cell, from the sheet's XML (openpyxl takes twice as long).
        cells = harness.raw_cells(data)
        self.assertEqual(len(cells), 3 * (ROWS + 1))
        bad = []
        for i, row in enumerate(job["rows"]):
            got = [cells.get("%s%d" % (c, i + 2), (None, None, None)) for c in "ABC"]
            if [v for _, _, v in got] != [row["ref"], str(row["n"]), row["g"]] \
                    or any(f for _, f, _ in got) or got[1][0] != "n":
                bad.append((i, got))
                if len(bad) > 5:
                    break
        self.assertEqual(bad, [], "wrong cells (row index, [(type, formula, value)])")
        self.assertEqual(st.get("attempts"), "2", st)
        self.assertEqual(self.stats().get("jobs_succeeded"), 1, self.stats())
        self.assert_queues_empty()
        self.assert_no_upload_leftovers()

    def assert_swept(self, new_worker, left):
        """@left ({path: inode}, the dead worker's files) is gone once
        @new_worker has started (a file of the same name with another inode
        is a new one)."""
        self.wait_registered(new_worker, timeout=10)
        self.assertTrue(new_worker.running(), new_worker.log())
        deadline = time.monotonic() + 1.0
        while True:
            now = workbooks(new_worker.tmpdir)
            still = {p: i for p, i in left.items() if now.get(p) == i}
            if not still or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(sorted(map(os.path.basename, still)), [],
                         "the dead worker's temporary workbooks are still there after a new "
                         "worker started on the same EXPORT_TMPDIR")

    def test_kill_while_packing(self):
        a = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS)
        self.wait_registered(a)
        job = big_job("packing")
        self.enqueue(job)
        deadline = time.monotonic() + 60
        left = {}
        while time.monotonic() < deadline and not left:
            left = workbooks(a.tmpdir)
            if not left:
                if self.status("packing").get("state") in harness.TERMINAL:
                    break
                time.sleep(0.005)
        self.assertTrue(left, "no export-* file seen in EXPORT_TMPDIR while the job ran: %r"
                        % self.status("packing"))
        a.kill9()
        t_kill_ms = harness.now_ms()
        left = workbooks(a.tmpdir)
        print("\n  killed while packing; left: %s" % sorted(map(os.path.basename, left)))
        self.assertTrue(left, "the temporary workbook went away with the kill")
        b = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_TMPDIR=a.tmpdir)
        with self.subTest("the dead worker's files swept at start-up"):
            self.assert_swept(b, left)
        with self.subTest("the job recovered, ended once, nothing left"):
            self.check_job("packing", job, t_kill_ms)
        self.assertEqual(sorted(os.listdir(a.tmpdir)), [], "files left in EXPORT_TMPDIR")

    def test_kill_while_uploading(self):
        port = self.r.connection_pool.connection_kwargs["port"]
        proxy = RespProxy(port)
        self._at_end.append(proxy.stop)
        up = (self.prefix + ":upload:").encode()
        old = (self.prefix + ":result:").encode()
        rule = proxy.delay(writes_key(lambda k: k.startswith(up)
                                      or (k.startswith(old) and b":upload:" in k)), 0.4)
        a = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_REDIS_URL=proxy.url(),
                              EXPORT_JOB_TIMEOUT=JOB_TIMEOUT_S)
        self.wait_registered(a, timeout=10)
        job = big_job("uploading")
        self.enqueue(job)
        deadline = time.monotonic() + 60
        keys = {}
        while time.monotonic() < deadline and not keys:
            keys = self.upload_keys()
            if not keys:
                if self.status("uploading").get("state") in harness.TERMINAL:
                    break
                time.sleep(0.01)
        self.assertTrue(keys, "no upload key seen while the job ran (chunk writes held: %d): %r"
                        % (len(rule.hits), self.status("uploading")))
        a.kill9()
        t_kill_ms = harness.now_ms()
        sets = self.upload_sets()
        left = workbooks(a.tmpdir)
        print("\n  killed while uploading: keys %s, sets %s, files %s"
              % (sorted(keys), sets, sorted(map(os.path.basename, left))))
        proxy.clear()
        with self.subTest("upload keys expire within the job's deadline + 1 min"):
            bound = (JOB_TIMEOUT_S + 60) * 1000
            self.assertEqual({k: t for k, t in keys.items() if not 0 < t <= bound}, {},
                             "upload keys whose PTTL is not within (0, %d] ms" % bound)
        b = self.start_worker(EXPORT_HEARTBEAT_TTL_MS=TTL_MS, EXPORT_TMPDIR=a.tmpdir)
        with self.subTest("the dead worker's files swept at start-up"):
            self.assert_swept(b, left)
        with self.subTest("the job recovered, ended once, nothing left"):
            self.check_job("uploading", job, t_kill_ms)
        self.assertEqual(sorted(os.listdir(a.tmpdir)), [], "files left in EXPORT_TMPDIR")

    def test_sweep_spares_a_live_owners_file(self):
        """A file whose owner holds its flock (another live worker on the same
        folder) and files not named export-* are not swept; an unlocked
        export-* file is."""
        tmpdir = os.path.join(self.tmp, "shared")
        os.mkdir(tmpdir)
        live = os.path.join(tmpdir, "export-live-owner.xlsx")
        dead = os.path.join(tmpdir, "export-dead-owner.xlsx")
        other = os.path.join(tmpdir, "notes.txt")
        for path in (live, dead, other):
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 partial")
        holder = open(live, "rb")
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)

        def cleanup():
            holder.close()
            for path in (live, dead, other):
                if os.path.exists(path):
                    os.unlink(path)
        self.addCleanup(cleanup)
        w = self.start_worker(EXPORT_TMPDIR=tmpdir)
        self.wait_registered(w)
        self.wait_until("the unlocked export-* file swept", lambda: not os.path.exists(dead),
                        timeout=2)
        self.assertTrue(os.path.exists(live), "a live owner's (flock held) file was swept")
        self.assertTrue(os.path.exists(other), "a file not named export-* was removed")
        holder.close()
        for path in (live, other):
            os.unlink(path)
        self.run_job({"id": "after", "columns": [{"header": "A", "field": "a"}],
                      "rows": [{"a": "x"}]}, timeout=15)


if __name__ == "__main__":
    harness.main()
