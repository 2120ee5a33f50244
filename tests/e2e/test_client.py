"""The Python client (clients/python, module exportclient) against the real
worker, mock lookup service and Redis (PROTOCOL.md section 5).

Client: enqueue/status/wait/fetch/cancel from plain code and from threads,
the typed status, id and document checks, the queued status written with the
push, WaitTimeout being a TimeoutError, a tampered or missing result, a
failed job, an unknown id, and that wait() is woken by P:events and also
finds an ending no event announced.

AsyncClient: the same inside an event loop, under asyncio.run() and from a
coroutine in a loop that is already running (the case that made asyncio.run()
fail in a web backend); and the sync Client called from a running loop, which
it neither needs nor touches.
"""

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
import unittest.mock

import openpyxl
import redis
import redis.asyncio

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "clients", "python")
sys.path.insert(0, HERE)
sys.path.insert(0, CLIENT_DIR)
import harness  # noqa: E402
from harness import E2ETest, lookup_job_doc, sha256  # noqa: E402

import exportclient  # noqa: E402
from exportclient import (AsyncClient, Client, ExportError, JobCancelled, JobFailed,  # noqa: E402
                          JobNotFound, JobNotReady, ResultMismatch, ResultMissing,
                          WaitTimeout)

INT_FIELDS = ("progress", "rows_total", "rows_written", "lookups_total", "lookups_done",
              "lookups_failed", "attempts", "queued_at", "started_at", "finished_at",
              "updated_at", "result_bytes")
STR_FIELDS = ("state", "worker", "result_key", "result_sha256", "filename")


async def close_redis(r):
    """Closes a redis.asyncio client and its pool while its loop still runs
    (redis-py 4.3 leaves the pool of a from_url() client open on close())."""
    await r.close()
    await r.connection_pool.disconnect()


def small_job(jid=None, nkeys=6, **members):
    """A job of @nkeys rows, each looked up in service "tether"; no id if @jid is None."""
    doc = lookup_job_doc(jid or "x", ["C-%03d" % i for i in range(nkeys)], **members)
    if jid is None:
        del doc["id"]
    return doc


def slow_job(jid, nkeys=40):
    """With EXPORT_POOL_SIZE=1 and a 500 ms mock: nkeys / 2 seconds of lookups."""
    return lookup_job_doc(jid, ["S-%03d" % i for i in range(nkeys)])


class ClientCase(E2ETest):

    def client(self, **kw):
        return Client(self.r, prefix=self.prefix, **kw)

    def assert_typed_success(self, st, job, data):
        self.assertEqual(st["state"], "succeeded", st)
        for f in INT_FIELDS:
            self.assertIs(type(st[f]), int, "%s is %r" % (f, st[f]))
        for f in STR_FIELDS:
            self.assertIs(type(st[f]), str, "%s is %r" % (f, st[f]))
        self.assertEqual(st["progress"], 100)
        self.assertEqual(st["rows_total"], len(job["rows"]))
        self.assertEqual(st["rows_written"], len(job["rows"]))
        self.assertEqual(st["lookups_done"], st["lookups_total"])
        self.assertEqual(st["attempts"], 1)
        self.assertEqual(st["result_bytes"], len(data))
        self.assertEqual(st["result_sha256"], sha256(data))
        self.assertTrue(st["queued_at"] <= st["started_at"] <= st["finished_at"], st)
        self.assertEqual(data, self.result_bytes({"result_key": st["result_key"]}))
        ws = openpyxl.load_workbook(io.BytesIO(data)).active
        self.assertEqual(ws.max_row, len(job["rows"]) + 1)
        self.assert_rows(ws, job["columns"], job["rows"], lookup_key="sn")

    def set_state(self, jid, **fields):
        """Writes status fields by hand, as a worker would (no event)."""
        self.r.hset(self.key("job", jid), mapping=fields)


class SyncClient(ClientCase):

    def test_enqueue_wait_fetch(self):
        client = self.client()
        job = small_job()
        jid = client.enqueue(job)
        self.assertNotIn("id", job, "enqueue changed the caller's dict")
        self.assertRegex(jid, r"^[A-Za-z0-9._:-]{1,128}$")
        # Before any worker runs: the queued status and the document, pushed together.
        st = client.status(jid)
        self.assertEqual(set(st), {"state", "progress", "attempts", "queued_at", "updated_at"}, st)
        self.assertEqual((st["progress"], st["attempts"]), (0, 0))
        self.assertEqual(st["state"], "queued")
        self.assertIs(type(st["queued_at"]), int)
        self.assertLessEqual(abs(st["queued_at"] - harness.now_ms()), 5000)
        queued = self.r.lrange(self.key("queue"), 0, -1)
        self.assertEqual(len(queued), 1)
        self.assertEqual(json.loads(queued[0]), dict(job, id=jid))
        with self.assertRaises(JobNotReady) as cm:
            client.fetch(jid)
        self.assertEqual(cm.exception.state, "queued")

        self.start_worker(self.start_mock())
        st = client.wait(jid, timeout=30)
        data = client.fetch(jid)
        job["id"] = jid
        self.assert_typed_success(st, job, data)
        self.assertEqual(client.status(jid), st)
        self.assertEqual(st["filename"], jid + ".xlsx")
        self.assertFalse(client.cancel(jid), "cancel of a finished job did something")
        self.assertNotIn("cancel", client.status(jid))

    def test_from_threads(self):
        self.start_worker(self.start_mock(), EXPORT_CONCURRENCY=2)
        client = self.client()
        results, errors = {}, []

        def run(n):
            try:
                job = small_job("thread-%d" % n, nkeys=3 + n)
                jid = client.enqueue(job)
                results[n] = (job, client.wait(jid, timeout=30), client.fetch(jid))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append((n, e))

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(results), [0, 1, 2, 3])
        for job, st, data in results.values():
            self.assert_typed_success(st, job, data)

    def test_json_text_is_pushed_as_given(self):
        client = self.client()
        text = ('{"id": "text-1", "columns": [{"header": "N", "field": "n", '
                '"type": "integer"}], "rows": [{"n": 12.50e1}, {"n": 1e3}]}')
        self.assertEqual(client.enqueue(text), "text-1")
        self.assertEqual(self.r.lrange(self.key("queue"), 0, -1), [text.encode()])
        # Without an id, the id goes in front and the rest stays byte for byte.
        text2 = ' {"columns": [{"header": "N", "field": "n"}], "rows": [{"n": 1.50}]}'
        jid = client.enqueue(text2.encode(), id="text-2")
        self.assertEqual(jid, "text-2")
        pushed = self.r.lindex(self.key("queue"), 0).decode()
        self.assertTrue(pushed.endswith(text2[2:]), pushed)
        self.assertEqual(json.loads(pushed)["id"], "text-2")
        self.start_worker()
        client.wait("text-1", timeout=30)
        rows = list(openpyxl.load_workbook(io.BytesIO(client.fetch("text-1"))).active.values)
        self.assertEqual(rows, [("N",), (125,), (1000,)])
        client.wait("text-2", timeout=30)
        rows = list(openpyxl.load_workbook(io.BytesIO(client.fetch("text-2"))).active.values)
        self.assertEqual(rows, [("N",), ("1.5",)])

    def test_bad_arguments_write_nothing(self):
        client = self.client()
        good = small_job()
        for bad in ("", "a b", "x" * 129, "é", "a\n", "a/b", 12, None):
            for call in (client.status, client.wait, client.fetch, client.cancel):
                with self.assertRaises(ValueError, msg="%s(%r)" % (call.__name__, bad)):
                    call(bad)
            if bad is not None:  # enqueue(job, id=None) makes an id up
                with self.assertRaises(ValueError):
                    client.enqueue(dict(good, id=bad))
                with self.assertRaises(ValueError):
                    client.enqueue(good, id=bad)
        for bad in ({"rows": [{"when": object()}]}, {"rows": {1, 2}},
                    {"rows": [{"x": float("nan")}]}, {"s": "\ud800"},
                    "not json", "[1, 2]", '{"a": NaN}', b"\xff{}", '{"id": null}',
                    '{"id": "a", "id": "b"}', 42, ["a"]):
            with self.assertRaises(ValueError, msg=repr(bad)) as cm:
                client.enqueue(bad)
            self.assertRegex(str(cm.exception), "JSON|UTF-8|id|dict", repr(bad))
        with self.assertRaisesRegex(ValueError, "does not match"):
            client.enqueue(dict(good, id="one"), id="two")
        with self.assertRaises(ValueError):
            self.client(poll_interval=0)
        self.assertEqual(list(self.r.scan_iter(match=self.prefix + ":*")), [])

    def test_unknown_id(self):
        client = self.client()
        self.assertIsNone(client.status("nope"))
        with self.assertRaises(JobNotFound) as cm:
            client.wait("nope", timeout=5)
        self.assertEqual(cm.exception.job_id, "nope")
        self.assertIsInstance(cm.exception, ExportError)
        with self.assertRaises(JobNotFound):
            client.fetch("nope")
        self.assertFalse(client.cancel("nope"))
        self.assertEqual(self.r.exists(self.key("job", "nope")), 0,
                         "cancel created a status hash")

    def test_cancel_and_wait_timeout(self):
        mock = self.start_mock(latency_ms=500)
        self.start_worker(mock, EXPORT_POOL_SIZE=1)
        client = self.client()
        jid = client.enqueue(slow_job("slow"))
        self.wait_state(jid, ("running",) + harness.TERMINAL, timeout=10)
        t0 = time.monotonic()
        with self.assertRaises(WaitTimeout) as cm:
            client.wait(jid, timeout=0.5)
        took = time.monotonic() - t0
        self.assertTrue(0.45 <= took < 2.0, "a 0.5 s wait took %.2f s" % took)
        e = cm.exception
        self.assertIsInstance(e, TimeoutError)
        self.assertIsInstance(e, ExportError)
        self.assertEqual((e.job_id, e.timeout, e.status["state"]), (jid, 0.5, "running"))
        try:
            client.wait(jid, timeout=0.2)
        except TimeoutError:  # what PROTOCOL.md section 5 promises
            pass
        else:
            self.fail("no TimeoutError")

        self.assertTrue(client.cancel(jid))
        self.assertEqual(client.status(jid)["cancel"], 1)
        t0 = time.monotonic()
        with self.assertRaises(JobCancelled) as cm:
            client.wait(jid, timeout=10)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(cm.exception.status["state"], "cancelled")
        self.assertFalse(client.cancel(jid), "cancel of a cancelled job did something")
        with self.assertRaises(JobCancelled):
            client.fetch(jid)
        self.assertEqual(self.r.exists(self.key("result", jid)), 0)

    def test_cancel_before_start(self):
        client = self.client()
        jid = client.enqueue(small_job())
        self.assertTrue(client.cancel(jid))
        mock = self.start_mock()
        self.start_worker(mock)
        with self.assertRaises(JobCancelled):
            client.wait(jid, timeout=15)
        self.assertEqual(mock.lookups(), 0)

    def test_enqueue_refuses_a_busy_id_and_reruns_an_ended_one(self):
        # The client runs exportctl's own scripts, shipped in the package.
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        for name in ("enqueue", "cancel"):
            with open(os.path.join(root, "common", "lua", name + ".lua")) as f:
                self.assertEqual(getattr(exportclient._common, name.upper() + "_LUA"), f.read())
        client = self.client()
        jid = client.enqueue(small_job(), id="busy-1")
        with self.assertRaises(exportclient.JobBusy) as cm:
            client.enqueue(small_job(), id="busy-1")
        self.assertEqual(cm.exception.state, "queued")
        self.assertEqual(self.r.llen(self.key("queue")), 1)
        self.assertTrue(client.cancel(jid))
        self.start_worker(self.start_mock())
        with self.assertRaises(JobCancelled):
            client.wait(jid, timeout=15)
        self.assertFalse(client.cancel(jid))
        # Ended: it runs again, on a fresh status without the old cancel.
        client.enqueue(small_job(), id="busy-1")
        st = client.wait(jid, timeout=15)
        self.assertEqual((st["state"], st["attempts"]), ("succeeded", 1))
        self.assertNotIn("cancel", st)

    def test_fetch_tampered_and_missing_result(self):
        self.start_worker(self.start_mock())
        client = self.client()
        jid = client.enqueue(small_job("tamper"))
        st = client.wait(jid, timeout=30)
        good = client.fetch(jid)
        rkey = self.key("result", jid)
        self.assertEqual(st["result_key"], rkey)
        flipped = bytearray(good)
        flipped[len(flipped) // 2] ^= 0x01
        self.r.set(rkey, bytes(flipped), keepttl=True)
        with self.assertRaises(ResultMismatch) as cm:
            client.fetch(jid)
        self.assertIn("result_sha256", str(cm.exception))
        self.r.set(rkey, good + b"x", keepttl=True)
        with self.assertRaises(ResultMismatch):
            client.fetch(jid)
        self.r.set(rkey, good, keepttl=True)
        self.assertEqual(client.fetch(jid), good)
        self.r.delete(rkey)
        with self.assertRaises(ResultMissing):
            client.fetch(jid)

    def test_failed_job(self):
        self.start_worker(self.start_mock("--fail", "C-002=404"))
        client = self.client()
        jid = client.enqueue(small_job("fails"))
        with self.assertRaises(JobFailed) as cm:
            client.wait(jid, timeout=30)
        self.assertEqual(cm.exception.error_code, "lookup_failed")
        self.assertIn("C-002", cm.exception.error)
        with self.assertRaises(JobFailed) as cm:
            client.fetch(jid)
        self.assertEqual(cm.exception.error_code, "lookup_failed")
        self.assertEqual(cm.exception.status["state"], "failed")
        # invalid_job, from a document the worker refuses.
        jid = client.enqueue({"columns": [{"header": "A", "field": "a", "type": "nope"}],
                              "rows": []})
        with self.assertRaises(JobFailed) as cm:
            client.wait(jid, timeout=30)
        self.assertEqual(cm.exception.error_code, "invalid_job")
        self.assertIn("columns[0].type", cm.exception.error)

    def test_wait_is_woken_by_events(self):
        """With polling every 30 s, only P:events can end the wait early."""
        client = self.client(poll_interval=30)
        jid = client.enqueue(small_job())

        def finish():
            time.sleep(0.4)
            self.set_state(jid, state="failed", error_code="internal", error="disk full")
            self.r.publish(self.key("events"),
                           json.dumps({"id": "other", "state": "failed", "progress": 0}))
            self.r.publish(self.key("events"),
                           json.dumps({"id": jid, "state": "failed", "progress": 0}))

        threading.Thread(target=finish, daemon=True).start()
        t0 = time.monotonic()
        with self.assertRaises(JobFailed) as cm:
            client.wait(jid, timeout=10)
        self.assertLess(time.monotonic() - t0, 2.5, "the event did not end the wait")
        self.assertEqual((cm.exception.error_code, cm.exception.error),
                         ("internal", "disk full"))

    def test_wait_polls_without_events(self):
        """An ending no event announced is found by polling within about a second."""
        client = self.client()
        jid = client.enqueue(small_job())

        def finish():
            time.sleep(0.3)
            self.set_state(jid, state="cancelled")

        threading.Thread(target=finish, daemon=True).start()
        t0 = time.monotonic()
        with self.assertRaises(JobCancelled):
            client.wait(jid, timeout=10)
        self.assertLess(time.monotonic() - t0, 2.5, "the poll every second did not see the end")

    def test_sync_import_needs_no_asyncio_client(self):
        code = ("import sys; sys.path.insert(0, %r); import exportclient; "
                "print('redis.asyncio' in sys.modules)" % CLIENT_DIR)
        out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             check=True, timeout=30).stdout.decode().strip()
        self.assertEqual(out, "False", "import exportclient loaded redis.asyncio")
        self.assertIs(exportclient.AsyncClient, AsyncClient)


class AsyncClientTest(ClientCase):

    async def full_round(self, label):
        """enqueue/status/wait/fetch with an AsyncClient made in the running loop;
        a ticker shows the loop keeps running while wait() waits. The worker
        starts only on the ticker's first tick, so the job cannot end before
        the loop has been seen running."""
        r = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            client = AsyncClient(r, prefix=self.prefix)
            job = small_job("%s-1" % label)
            jid = await client.enqueue(job)
            self.assertEqual(jid, job["id"])
            st = await client.status(jid)
            self.assertEqual(st["state"], "queued")
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1
                    if ticks == 1:
                        self.start_worker(self.start_mock(), EXPORT_CONCURRENCY=2)

            tick_task = asyncio.ensure_future(ticker())
            try:
                st = await client.wait(jid, timeout=30)
            finally:
                tick_task.cancel()
            self.assertGreater(ticks, 0, "the loop stood still during wait()")
            data = await client.fetch(jid)
            self.assert_typed_success(st, job, data)

            # Several waits at once on one loop.
            jobs = [small_job("%s-g%d" % (label, n), nkeys=2 + n) for n in range(3)]
            ids = [await client.enqueue(j) for j in jobs]
            sts = await asyncio.gather(*(client.wait(i, timeout=30) for i in ids))
            for j, s in zip(jobs, sts):
                self.assert_typed_success(s, j, await client.fetch(j["id"]))
            return jid
        finally:
            await close_redis(r)

    def test_under_asyncio_run(self):
        jid = asyncio.run(self.full_round("run"))
        self.assertEqual(self.status(jid)["state"], "succeeded")

    def test_in_an_already_running_loop(self):
        """A coroutine running in a loop someone else started (as in an async
        view) awaits the client; asyncio.run() there would fail, and the
        client never calls it."""
        loop = asyncio.new_event_loop()

        async def view():
            self.assertIs(asyncio.get_running_loop(), loop)
            # What broke the first backend: asyncio.run() inside a running loop.
            coro = asyncio.sleep(0)
            with self.assertRaisesRegex(RuntimeError, "running event loop"):
                asyncio.run(coro)
            coro.close()
            with unittest.mock.patch("asyncio.run", side_effect=AssertionError("asyncio.run")), \
                    unittest.mock.patch("asyncio.new_event_loop",
                                        side_effect=AssertionError("new_event_loop")):
                return await self.full_round("nested")

        async def server():
            # The loop is already running when the "request" comes in.
            await asyncio.sleep(0)
            return await asyncio.ensure_future(view())

        try:
            jid = loop.run_until_complete(server())
        finally:
            loop.close()
        self.assertEqual(self.status(jid)["state"], "succeeded")

    def test_sync_client_inside_a_running_loop(self):
        """The sync Client in a coroutine: it blocks, but needs and touches no loop."""
        self.start_worker(self.start_mock())
        client = self.client()

        async def handler():
            with unittest.mock.patch("asyncio.run", side_effect=AssertionError("asyncio.run")), \
                    unittest.mock.patch("asyncio.new_event_loop",
                                        side_effect=AssertionError("new_event_loop")), \
                    unittest.mock.patch("asyncio.get_event_loop",
                                        side_effect=AssertionError("get_event_loop")):
                job = small_job("sync-in-loop")
                jid = client.enqueue(job)
                st = client.wait(jid, timeout=30)
                return job, st, client.fetch(jid)

        job, st, data = asyncio.run(handler())
        self.assert_typed_success(st, job, data)

    def test_wait_events_and_polling(self):
        """As for the sync client: an event ends the wait at once, and polling
        finds an ending without one."""
        def later(jid, publish):
            time.sleep(0.3)
            self.set_state(jid, state="succeeded")
            if publish:
                self.r.publish(self.key("events"),
                               json.dumps({"id": jid, "state": "succeeded", "progress": 100}))

        async def main():
            r = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                for poll, publish in ((30, True), (1.0, False)):
                    client = AsyncClient(r, prefix=self.prefix, poll_interval=poll)
                    jid = await client.enqueue(small_job())
                    threading.Thread(target=later, args=(jid, publish), daemon=True).start()
                    t0 = time.monotonic()
                    st = await client.wait(jid, timeout=10)
                    self.assertEqual(st["state"], "succeeded")
                    self.assertLess(time.monotonic() - t0, 2.5, "poll %s" % poll)
            finally:
                await close_redis(r)

        asyncio.run(main())

    def test_errors(self):
        mock = self.start_mock(latency_ms=500)

        async def main():
            r = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                client = AsyncClient(r, prefix=self.prefix)
                self.assertIsNone(await client.status("nope"))
                with self.assertRaises(JobNotFound):
                    await client.wait("nope", timeout=5)
                with self.assertRaises(JobNotFound):
                    await client.fetch("nope")
                self.assertFalse(await client.cancel("nope"))
                self.assertEqual(await r.exists(self.key("job", "nope")), 0)
                with self.assertRaises(ValueError):
                    await client.enqueue({"id": "bad id"})
                with self.assertRaises(ValueError):
                    await client.status("")

                jid = await client.enqueue(slow_job("aslow"))
                with self.assertRaises(JobNotReady):
                    await client.fetch(jid)
                t0 = time.monotonic()
                with self.assertRaises(TimeoutError) as cm:
                    await client.wait(jid, timeout=0.4)
                self.assertTrue(0.35 <= time.monotonic() - t0 < 2.0)
                self.assertIsInstance(cm.exception, WaitTimeout)
                # A wait cancelled from outside cancels only the wait.
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.wait(jid), 0.3)
                self.assertEqual((await client.status(jid))["state"], "queued")

                self.start_worker(mock, EXPORT_POOL_SIZE=1)
                self.assertTrue(await client.cancel(jid))
                with self.assertRaises(JobCancelled):
                    await client.wait(jid, timeout=15)

                bad = await client.enqueue({"columns": [{"header": "A", "field": "a",
                                                         "type": "nope"}], "rows": []})
                with self.assertRaises(JobFailed) as cm:
                    await client.wait(bad, timeout=30)
                self.assertEqual(cm.exception.error_code, "invalid_job")
                with self.assertRaises(JobFailed):
                    await client.fetch(bad)

                ok = await client.enqueue(small_job("atamper", nkeys=2))
                await client.wait(ok, timeout=30)
                await r.set(self.key("result", ok), b"PK not the workbook", keepttl=True)
                with self.assertRaises(ResultMismatch):
                    await client.fetch(ok)
            finally:
                await close_redis(r)

        asyncio.run(main())


if __name__ == "__main__":
    harness.main()
