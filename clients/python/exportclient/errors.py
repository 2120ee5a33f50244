"""The exceptions of exportclient.

Every error about a job is an :class:`ExportError`. Bad arguments (an id of
the wrong form, a job that is not JSON) are plain :class:`ValueError`, raised
before anything is sent to Redis; Redis' own failures are redis-py's
exceptions, passed through unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

Status = Dict[str, Any]


class ExportError(Exception):
    """Base class: something about job ``job_id`` went otherwise than asked.

    ``status`` is the job's status (as :meth:`Client.status` returns it) when
    it was known, else None.
    """

    def __init__(self, message: str, job_id: Optional[str] = None,
                 status: Optional[Status] = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class JobNotFound(ExportError):
    """There is no status hash for the id: never enqueued, or expired."""


class JobBusy(ExportError):
    """enqueue found a job of the same id queued or running; nothing was written."""

    def __init__(self, message: str, job_id: Optional[str] = None,
                 state: Optional[str] = None) -> None:
        super().__init__(message, job_id)
        self.state = state


class JobFailed(ExportError):
    """The job ended ``failed``; ``error_code`` and ``error`` say why."""

    def __init__(self, message: str, job_id: Optional[str] = None,
                 status: Optional[Status] = None) -> None:
        super().__init__(message, job_id, status)
        status = status or {}
        self.error_code: Optional[str] = status.get("error_code")
        self.error: Optional[str] = status.get("error")


class JobCancelled(ExportError):
    """The job ended ``cancelled``."""


class JobNotReady(ExportError):
    """The job has not ended yet (``state`` is ``queued`` or ``running``)."""

    def __init__(self, message: str, job_id: Optional[str] = None,
                 status: Optional[Status] = None) -> None:
        super().__init__(message, job_id, status)
        self.state: Optional[str] = (status or {}).get("state")


class WaitTimeout(ExportError, TimeoutError):
    """The timeout of a wait passed before the job ended.

    Also a builtin :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    ``timeout`` is the number of seconds waited.
    """

    def __init__(self, message: str, job_id: Optional[str] = None,
                 status: Optional[Status] = None,
                 timeout: Optional[float] = None) -> None:
        super().__init__(message, job_id, status)
        self.timeout = timeout


class ResultError(ExportError):
    """The job succeeded but its workbook cannot be handed out."""


class ResultMismatch(ResultError):
    """The stored workbook does not match ``result_sha256`` (or ``result_bytes``)."""


class ResultMissing(ResultError):
    """The status says ``succeeded`` but the result key holds nothing (expired?)."""
