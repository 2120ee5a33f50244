"""The Django example (examples/django) against the real worker, mock lookup
service and Redis, through Django's test client.

POST /exports/ answers 202 with the id and a Location; the status JSON goes
from queued through running to succeeded with progress that never goes back;
the download is 404 before the workbook is ready and the .xlsx after; an
unknown id is 404, a failed or cancelled job 409, a bad body 400; and the
async long-poll view works in the loop Django runs it in.
"""

import io
import json
import logging
import os
import sys
import time

import openpyxl

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
sys.path.insert(0, os.path.join(REPO, "examples", "django"))
import harness  # noqa: E402
from harness import E2ETest  # noqa: E402

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DjangoExample(E2ETest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.environ["DJANGO_SETTINGS_MODULE"] = "exportsite.settings"
        os.environ["EXPORT_REDIS_URL"] = cls.redis_url
        import django
        from django.test.utils import setup_test_environment
        django.setup()
        setup_test_environment()  # lets the test client's "testserver" host in
        # The 4xx answers are expected here; keep their warnings out of the log.
        logging.getLogger("django.request").setLevel(logging.ERROR)

    def setUp(self):
        super().setUp()
        from django.test import Client, override_settings
        settings = override_settings(EXPORT_PREFIX=self.prefix,
                                     EXPORT_REDIS_URL=self.redis_url)
        settings.enable()
        self.addCleanup(settings.disable)
        self.web = Client()

    def get_json(self, path, status=200, **kw):
        resp = self.web.get(path, **kw)
        self.assertEqual(resp.status_code, status, "%s: %s" % (path, resp.content[:500]))
        self.assertEqual(resp["Content-Type"], "application/json")
        return resp.json()

    def post(self, body=b"", path="/exports/", status=202):
        resp = self.web.post(path, data=body, content_type="application/json")
        self.assertEqual(resp.status_code, status, resp.content[:500])
        return resp

    def xlsx(self, resp):
        self.assertEqual(resp.status_code, 200)
        self.assertEqual(resp["Content-Type"], XLSX)
        data = b"".join(resp.streaming_content)
        self.assertEqual(int(resp["Content-Length"]), len(data))
        return data, openpyxl.load_workbook(io.BytesIO(data))

    def test_demo_export(self):
        from exportsite.demo import demo_job
        mock = self.start_mock(latency_ms=150)
        self.get_json("/exports/nope/", 404)
        self.get_json("/exports/nope/download/", 404)
        self.assertEqual(self.web.get("/exports/bad%20id/").status_code, 404)

        resp = self.post(path="/exports/?rows=40")
        jid = resp.json()["id"]
        self.assertRegex(jid, r"^[A-Za-z0-9._:-]{1,128}$")
        self.assertEqual(resp["Location"], "http://testserver/exports/%s/" % jid)
        self.assertEqual(resp.json()["status"], resp["Location"])
        st = self.get_json("/exports/%s/" % jid)
        self.assertEqual(st["state"], "queued")
        self.assertIsInstance(st["queued_at"], int)
        self.assertEqual(st["id"], jid)
        self.get_json("/exports/%s/download/" % jid, 404)

        # 40 keys, 2 at a time, 150 ms each: about 3 s of running.
        self.start_worker(mock, EXPORT_POOL_SIZE=2)
        seen, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:
            st = self.get_json("/exports/%s/" % jid)
            seen.append((st["state"], st.get("progress", 0)))
            if st["state"] in harness.TERMINAL:
                break
            if st["state"] == "running":
                body = self.get_json("/exports/%s/download/" % jid, 404)
                self.assertEqual(body["state"], "running")
            time.sleep(0.1)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIn("running", [s for s, _ in seen], seen)
        progress = [p for _, p in seen]
        self.assertEqual(progress, sorted(progress), "progress went backwards: %r" % seen)
        self.assertEqual(st["progress"], 100)
        self.assertEqual(st["rows_written"], 40)
        self.assertNotIn("result_key", st)
        self.assertEqual(st["download"], "http://testserver/exports/%s/download/" % jid)

        resp = self.web.get("/exports/%s/download/" % jid)
        data, wb = self.xlsx(resp)
        self.assertEqual(resp["Content-Disposition"],
                         'attachment; filename="contracts-demo.xlsx"')
        self.assertEqual(data, self.r.get(self.key("result", jid)))
        self.assertEqual(wb.sheetnames, ["Contracts"])
        job = demo_job(40)
        self.assert_rows(wb["Contracts"], job["columns"], job["rows"], lookup_key="sn")
        self.assertEqual(mock.lookups(), 40)

    def test_posted_job_and_async_wait(self):
        self.start_worker()
        doc = {"id": "dj-1", "filename": "Überblick Q4.xlsx",
               "columns": [{"header": "N", "field": "n", "type": "integer"}],
               "rows": [{"n": n} for n in range(5)]}
        resp = self.post(json.dumps(doc))
        self.assertEqual(resp.json()["id"], "dj-1")
        st = self.get_json("/exports/dj-1/wait/?timeout=20")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["rows_written"], 5)
        resp = self.web.get("/exports/dj-1/download/")
        _, wb = self.xlsx(resp)
        self.assertEqual(resp["Content-Disposition"],
                         "attachment; filename*=utf-8''%C3%9Cberblick%20Q4.xlsx")
        self.assertEqual(list(wb.active.values), [("N",)] + [(n,) for n in range(5)])

        # Bodies that are not a job: 400, and nothing is queued.
        for body in (b"{not json", b"[1, 2]", b'{"id": "bad id"}', b'{"id": 7}',
                     b'"text"', b"\xff\xfe"):
            resp = self.post(body, status=400)
            self.assertIn("error", resp.json(), body)
        self.post(path="/exports/?rows=many", status=400)
        self.assertEqual(self.r.llen(self.key("queue")), 0)
        self.assertEqual(self.web.get("/exports/").status_code, 405)
        self.assertEqual(self.web.post("/exports/dj-1/").status_code, 405)
        self.get_json("/exports/nope/wait/?timeout=1", 404)
        self.get_json("/exports/dj-1/wait/?timeout=zzz", 400)

    def test_failed_cancelled_tampered(self):
        # Still queued (no worker yet): the long-poll answers 202 at its timeout.
        bad = {"columns": [{"header": "A", "field": "a", "type": "nope"}], "rows": []}
        failed = self.post(json.dumps(bad)).json()["id"]
        cancelled = self.post(path="/exports/?rows=3").json()["id"]
        t0 = time.monotonic()
        st = self.get_json("/exports/%s/wait/?timeout=0.5" % failed, 202)
        self.assertTrue(0.4 <= time.monotonic() - t0 < 3)
        self.assertEqual(st["state"], "queued")
        from exportsite.views import get_client
        self.assertTrue(get_client().cancel(cancelled))

        self.start_worker(self.start_mock())
        body = self.get_json("/exports/%s/wait/?timeout=20" % failed, 409)
        self.assertEqual((body["state"], body["error_code"]), ("failed", "invalid_job"))
        body = self.get_json("/exports/%s/download/" % failed, 409)
        self.assertEqual(body["error_code"], "invalid_job")
        self.assertIn("columns[0].type", body["error"])
        body = self.get_json("/exports/%s/wait/?timeout=20" % cancelled, 409)
        self.assertEqual(body["state"], "cancelled")
        self.get_json("/exports/%s/download/" % cancelled, 409)

        ok = self.post(path="/exports/?rows=2").json()["id"]
        self.get_json("/exports/%s/wait/?timeout=20" % ok)
        self.r.set(self.key("result", ok), b"PK\x03\x04 not it", keepttl=True)
        body = self.get_json("/exports/%s/download/" % ok, 502)
        self.assertRegex(body["error"], "does not match|the status says")
        self.r.delete(self.key("result", ok))
        self.get_json("/exports/%s/download/" % ok, 404)


if __name__ == "__main__":
    harness.main()
