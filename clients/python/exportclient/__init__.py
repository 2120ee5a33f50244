"""exportclient: enqueue export-worker jobs and collect their workbooks.

The whole contract is plain Redis (PROTOCOL.md): this package writes the
``queued`` status and pushes the job document, reads the status hash, waits
on ``P:events``, fetches and checks the workbook, and asks for cancellation.

    import redis, exportclient

    client = exportclient.Client(redis.Redis.from_url("redis://127.0.0.1:6379/0"))
    job_id = client.enqueue({"columns": [{"header": "N", "field": "n"}],
                             "rows": [{"n": 1}]})
    status = client.wait(job_id, timeout=60)
    xlsx = client.fetch(job_id)

:class:`Client` blocks and never uses an event loop. :class:`AsyncClient`
has the same methods as coroutines on ``redis.asyncio``, to ``await`` inside
a running loop; it is imported on first use, so ``import exportclient`` does
not load ``redis.asyncio``.

:func:`redis_from_env` builds the redis-py client from the worker's own
variables (``EXPORT_REDIS_URL``, and Sentinel's ``EXPORT_REDIS_SENTINELS``,
``EXPORT_REDIS_MASTER``, ``EXPORT_REDIS_SENTINEL_PASSWORD``).
"""

from __future__ import annotations

from typing import Any

from .client import Client
from .errors import (ExportError, JobBusy, JobCancelled, JobFailed, JobNotFound, JobNotReady,
                     ResultError, ResultMismatch, ResultMissing, WaitTimeout)
from ._common import ID_RE, TERMINAL, check_id, new_id
from .env import parse_sentinels, redis_from_env

__version__ = "1.0.0"

__all__ = [
    "Client", "AsyncClient",
    "ExportError", "JobBusy", "JobNotFound", "JobFailed", "JobCancelled", "JobNotReady",
    "WaitTimeout", "ResultError", "ResultMismatch", "ResultMissing",
    "ID_RE", "TERMINAL", "check_id", "new_id", "redis_from_env", "parse_sentinels",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncClient":
        from .aio import AsyncClient
        return AsyncClient
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
