"""The blocking client, on ``redis.Redis``.

Plain blocking calls: no event loop is started, needed or touched, so it
works the same from a script, a thread, a sync Django view, or (blocking it
for the duration) code that happens to run inside an event loop.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import redis

from . import _common as c
from .errors import Status, WaitTimeout

__all__ = ["Client"]


class Client:
    """Enqueues export jobs and follows them, over a ``redis.Redis`` connection.

    ``prefix`` is the deployment's ``EXPORT_PREFIX``. ``poll_interval`` is the
    longest time (seconds) :meth:`wait` goes without reading the status when no
    event arrives. The client keeps no state of its own besides these, so one
    instance may be shared by threads (redis-py's pool is thread-safe).
    """

    def __init__(self, redis_client: redis.Redis, prefix: str = "export", *,
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

    def enqueue(self, job: c.Job, id: Optional[str] = None) -> str:  # noqa: A002
        """Queues @job; returns its id.

        @job is a dict, or a JSON object as ``str``/``bytes`` (pushed byte for
        byte). Its ``id`` is used when present; else @id, else a fresh one is
        made up (a dict passed in is not modified). One script, the one
        ``exportctl enqueue`` runs, writes a fresh status hash (``state=queued``,
        ``attempts`` 0, ``queued_at``, ``updated_at``; fields of an earlier run
        of the same id are dropped) and LPUSHes the document on ``P:queue``.

        Raises ValueError, before writing anything, for an invalid id, an
        @id that differs from the job's, or a job that is not a JSON object;
        JobBusy, writing nothing, when a job of that id is queued or running.
        """
        jid, data = c.encode_job(job, id)
        keys, args = c.enqueue_args(self.keys, jid, data)
        return c.enqueued(jid, self._enqueue(keys=keys, args=args))

    def status(self, job_id: str) -> Optional[Status]:
        """The job's status hash, typed, or None when there is none.

        Counters, ``progress``, ``cancel``, ``result_bytes`` and every ``*_at``
        time are ``int``; everything else is ``str``.
        """
        return c.parse_status(self.redis.hgetall(self.keys.job(c.check_id(job_id))))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Status:
        """Blocks until the job ends; returns its status if it succeeded.

        Woken by ``P:events`` and reading the status at least every
        ``poll_interval`` seconds in case an event is missed. @timeout is in
        seconds (None: no limit).

        Raises JobFailed, JobCancelled, JobNotFound (no status hash), or
        WaitTimeout (a TimeoutError) when @timeout passes first.
        """
        c.check_id(job_id)
        c.check_wait_args(timeout, self.poll_interval)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        pubsub = self._subscribe(deadline)
        try:
            while True:
                st = self.status(job_id)
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
                self._sleep(pubsub, job_id, step)
        finally:
            if pubsub is not None:
                pubsub.close()

    def fetch(self, job_id: str) -> bytes:
        """The workbook of a job that succeeded, checked against ``result_sha256``.

        Raises JobNotFound, JobNotReady (still queued or running), JobFailed,
        JobCancelled, ResultMissing (expired) or ResultMismatch (the bytes
        are not the ones the worker stored).
        """
        st = c.finished(job_id, self.status(job_id))
        data = self.redis.get(c.result_key(self.keys, job_id, st))
        return c.check_result(job_id, st, data)

    def cancel(self, job_id: str) -> bool:
        """Asks the worker to cancel the job (sets ``cancel`` = 1).

        Returns True if the request was recorded, False when there is no such
        job or it has already ended; never creates a status hash.
        """
        return c.text_of(self._cancel(keys=[self.keys.job(c.check_id(job_id))])) == "asked"

    # -- waiting --------------------------------------------------------------
    def _subscribe(self, deadline: Optional[float]) -> Any:
        """A pub/sub on P:events whose SUBSCRIBE the server has confirmed, so
        that a status read after it cannot miss an event; None when the server
        refuses SUBSCRIBE (e.g. an ACL), and then wait() only polls."""
        pubsub = self.redis.pubsub()
        try:
            pubsub.subscribe(self.keys.events)
            limit = time.monotonic() + 2.0
            if deadline is not None:
                limit = min(limit, deadline)
            while True:
                msg = pubsub.get_message(timeout=max(0.0, limit - time.monotonic()))
                if (msg and msg.get("type") == "subscribe") or time.monotonic() >= limit:
                    return pubsub
        except redis.ResponseError:
            pubsub.close()
            return None
        except BaseException:
            pubsub.close()
            raise

    @staticmethod
    def _sleep(pubsub: Any, job_id: str, seconds: float) -> None:
        """Returns after @seconds, or sooner when an event says the job ended."""
        if pubsub is None:
            time.sleep(seconds)
            return
        until = time.monotonic() + seconds
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if c.ends(job_id, msg):
                return
