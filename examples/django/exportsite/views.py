"""The export views: start, status, download (sync) and wait (async).

POST /exports/                 body: a job document (JSON object; its "id" is
                               optional), or empty for the demo job (?rows=N).
                               202 {"id", "status", "download"} + Location;
                               400 {"error"} for a body that is not a job.
GET  /exports/<id>/            200 the status (typed JSON); 404 unknown id.
GET  /exports/<id>/download/   200 the workbook; 404 unknown, not finished yet,
                               or expired; 409 {"state", "error_code", "error"}
                               when the job failed or was cancelled; 502 when
                               the stored bytes do not match result_sha256.
GET  /exports/<id>/wait/       (async) waits up to ?timeout=S seconds (default
                               25, at most 60): 200 the status once succeeded,
                               202 the status while still going, 404, or 409.

The sync views share one blocking Client (thread-safe). The async view runs
in whatever loop Django gives it (its own per request under WSGI, the
server's under ASGI), so it makes its redis.asyncio connection there.
"""

import functools
import io
from typing import Any, Dict, Optional

import redis
import redis.asyncio
from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from exportclient import (AsyncClient, Client, JobCancelled, JobFailed, JobNotFound,
                          JobNotReady, ResultMismatch, ResultMissing, WaitTimeout)

from .demo import demo_job

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_DEMO_ROWS = 100000


@functools.lru_cache(maxsize=8)
def _client_for(url: str, prefix: str) -> Client:
    return Client(redis.Redis.from_url(url), prefix=prefix)


def get_client() -> Client:
    """The shared blocking client for the current settings."""
    return _client_for(settings.EXPORT_REDIS_URL, settings.EXPORT_PREFIX)


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse(dict(extra, error=message), status=status)


def _ended(e: Any) -> JsonResponse:
    """409 for a job that failed or was cancelled."""
    st = e.status or {}
    return _error(409, str(e), state=st.get("state"), error_code=st.get("error_code"))


def _public(request: HttpRequest, job_id: str, st: Dict[str, Any]) -> Dict[str, Any]:
    """The status as the API shows it: with its id and, once done, its download URL."""
    out = {k: v for k, v in st.items() if k != "result_key"}
    out["id"] = job_id
    if st.get("state") == "succeeded":
        out["download"] = request.build_absolute_uri(reverse("export-download",
                                                             args=[job_id]))
    return out


@require_POST
def create_export(request: HttpRequest) -> HttpResponse:
    if request.body.strip():
        job: Any = request.body  # checked and pushed byte for byte by the client
    else:
        try:
            nrows = int(request.GET.get("rows", "20"))
        except ValueError:
            nrows = -1
        if not 0 <= nrows <= MAX_DEMO_ROWS:
            return _error(400, "rows must be a whole number from 0 to %d" % MAX_DEMO_ROWS)
        job = demo_job(nrows, settings.EXPORT_DEMO_SERVICE or None)
    try:
        job_id = get_client().enqueue(job)
    except ValueError as e:
        return _error(400, str(e))
    status_url = request.build_absolute_uri(reverse("export-status", args=[job_id]))
    response = JsonResponse({
        "id": job_id,
        "status": status_url,
        "download": request.build_absolute_uri(reverse("export-download", args=[job_id])),
    }, status=202)
    response["Location"] = status_url
    return response


@require_GET
def export_status(request: HttpRequest, job_id: str) -> HttpResponse:
    st = get_client().status(job_id)
    if st is None:
        return _error(404, "no export %s" % job_id)
    return JsonResponse(_public(request, job_id, st))


@require_GET
def download_export(request: HttpRequest, job_id: str) -> HttpResponse:
    client = get_client()
    st = client.status(job_id)
    try:
        data = client.fetch(job_id)
    except (JobNotFound, JobNotReady, ResultMissing) as e:
        return _error(404, str(e), state=(st or {}).get("state"))
    except (JobFailed, JobCancelled) as e:
        return _ended(e)
    except ResultMismatch as e:
        return _error(502, str(e))
    filename = (st or {}).get("filename") or "%s.xlsx" % job_id
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=filename,
                            content_type=XLSX)
    response["Cache-Control"] = "private, no-store"
    return response


async def wait_export(request: HttpRequest, job_id: str) -> HttpResponse:
    """Long-poll: awaits AsyncClient.wait inside the running loop."""
    if request.method != "GET":
        return _error(405, "use GET")
    try:
        timeout = float(request.GET.get("timeout", "25"))
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= 60:
        return _error(400, "timeout must be 0 to 60 seconds")
    r = redis.asyncio.Redis.from_url(settings.EXPORT_REDIS_URL)
    try:
        client = AsyncClient(r, prefix=settings.EXPORT_PREFIX)
        st: Optional[Dict[str, Any]]
        try:
            st = await client.wait(job_id, timeout=timeout)
            code = 200
        except WaitTimeout as e:
            st, code = e.status, 202
        except JobNotFound as e:
            return _error(404, str(e))
        except (JobFailed, JobCancelled) as e:
            return _ended(e)
        return JsonResponse(_public(request, job_id, st or {}), status=code)
    finally:
        await r.close()
        await r.connection_pool.disconnect()  # redis-py 4.3: close() keeps the pool
