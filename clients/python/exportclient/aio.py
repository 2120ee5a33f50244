"""The asyncio client, on ``redis.asyncio.Redis``.

Every method is a coroutine to ``await`` from code that already runs in an
event loop (an async Django or FastAPI view, a task): nothing here starts a
loop or calls ``asyncio.run``. A ``redis.asyncio.Redis`` belongs to the loop
it is first used in, so make the client in the loop that uses it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

import redis.asyncio
from redis.exceptions import ResponseError

from . import _common as c
from .errors import Status, WaitTimeout

__all__ = ["AsyncClient"]


class AsyncClient:
    """:class:`exportclient.Client` with coroutines, over ``redis.asyncio.Redis``.

    The methods, arguments, results and exceptions are those of the sync
    client; only ``await`` is added. :meth:`wait` suspends the calling task
    only, so the loop keeps serving other work meanwhile.
    """

    def __init__(self, redis_client: redis.asyncio.Redis, prefix: str = "export", *,
                 poll_interval: float = 1.0) -> None:
        c.check_wait_args(None, poll_interval)
        self.redis = redis_client
        self.keys = c.Keys(prefix)
        self.poll_interval = float(poll_interval)
        self._enqueue = redis_client.register_script(c.ENQUEUE_LUA)
        self._cancel = redis_client.register_script(c.CANCEL_LUA)

    @property
    def prefix(self) -> str:
        """The key prefix ``P``."""
        return self.keys.prefix

    async def enqueue(self, job: c.Job, id: Optional[str] = None) -> str:  # noqa: A002
        """Queues @job in one transaction; returns its id (see Client.enqueue)."""
        jid, data = c.encode_job(job, id)
        keys, args = c.enqueue_args(self.keys, jid, data)
        return c.enqueued(jid, await self._enqueue(keys=keys, args=args))

    async def status(self, job_id: str) -> Optional[Status]:
        """The typed status, or None when there is none (see Client.status)."""
        return c.parse_status(await self.redis.hgetall(self.keys.job(c.check_id(job_id))))

    async def wait(self, job_id: str, timeout: Optional[float] = None) -> Status:
        """Waits until the job ends; returns its status if it succeeded.

        Raises JobFailed, JobCancelled, JobNotFound or WaitTimeout (a
        TimeoutError), as Client.wait does. Cancelling the awaiting task
        cancels only the wait, not the job.
        """
        c.check_id(job_id)
        c.check_wait_args(timeout, self.poll_interval)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        pubsub = await self._subscribe(deadline)
        try:
            while True:
                st = await self.status(job_id)
                done = c.outcome(job_id, st)
                if done is not None:
                    return done
                step = self.poll_interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WaitTimeout("job %s did not end within %g s (state %s)"
                                          % (job_id, timeout, st.get("state")),
                                          job_id, st, timeout)
                    step = min(step, left)
                await self._sleep(pubsub, job_id, step)
        finally:
            if pubsub is not None:
                await _close(pubsub)

    async def fetch(self, job_id: str) -> bytes:
        """The checked workbook of a job that succeeded (see Client.fetch)."""
        st = c.finished(job_id, await self.status(job_id))
        data = await self.redis.get(c.result_key(self.keys, job_id, st))
        return c.check_result(job_id, st, data)

    async def cancel(self, job_id: str) -> bool:
        """Asks for cancellation; True if recorded (see Client.cancel)."""
        return c.text_of(await self._cancel(keys=[self.keys.job(c.check_id(job_id))])) == "asked"

    # -- waiting --------------------------------------------------------------
    async def _subscribe(self, deadline: Optional[float]) -> Any:
        """As Client._subscribe: confirmed pub/sub on P:events, or None."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.keys.events)
            limit = time.monotonic() + 2.0
            if deadline is not None:
                limit = min(limit, deadline)
            while True:
                left = limit - time.monotonic()
                if left <= 0:
                    return pubsub
                msg = await pubsub.get_message(timeout=left)
                if msg and msg.get("type") == "subscribe":
                    return pubsub
        except ResponseError:
            await _close(pubsub)
            return None
        except BaseException:
            await _close(pubsub)
            raise

    @staticmethod
    async def _sleep(pubsub: Any, job_id: str, seconds: float) -> None:
        """Returns after @seconds, or sooner when an event says the job ended."""
        if pubsub is None:
            await asyncio.sleep(seconds)
            return
        until = time.monotonic() + seconds
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if c.ends(job_id, msg):
                return


async def _close(pubsub: Any) -> None:
    """Closes a pub/sub of any redis-py version (aclose() from 5.0.1, reset() before)."""
    closer = getattr(pubsub, "aclose", None) or pubsub.reset
    await closer()
