"""What the sync and async clients share: key names, checks, parsing.

Nothing here does I/O, so both clients run the same rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import (JobBusy, JobCancelled, JobFailed, JobNotFound, JobNotReady,
                     ResultMismatch, ResultMissing, Status)

Job = Union[Mapping[str, Any], str, bytes, bytearray]

#: A job id: 1 to 128 of ``A-Z a-z 0-9 . _ : -`` (PROTOCOL.md section 2).
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: States after which a job does not change any more.
TERMINAL = frozenset(("succeeded", "failed", "cancelled"))

#: Status fields read as integers (besides every ``*_at`` time).
INT_FIELDS = frozenset((
    "progress", "rows_total", "rows_written", "lookups_total", "lookups_done",
    "lookups_failed", "attempts", "result_bytes", "cancel",
))

def _script(name: str) -> str:
    """The text of the Lua script @name, the very file export-worker's own
    tools run (common/lua/, shipped in this package)."""
    from importlib import resources
    return (resources.files(__package__) / "lua" / (name + ".lua")).read_text()


#: Writes a fresh queued status and pushes the document, in one step, unless
#: the job is queued or running already: returns ``['queued', '']`` or
#: ``['busy', state]``.
ENQUEUE_LUA = _script("enqueue")

#: Sets ``cancel`` = 1 on a job that exists and has not ended: returns
#: ``'asked'``, ``'missing'``, or the state the job ended in.
CANCEL_LUA = _script("cancel")


class Keys:
    """The Redis names under prefix ``P`` (PROTOCOL.md section 1)."""

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string, got %r" % (prefix,))
        self.prefix = prefix
        self.queue = prefix + ":queue"
        self.events = prefix + ":events"

    def job(self, job_id: str) -> str:
        return "%s:job:%s" % (self.prefix, job_id)

    def result(self, job_id: str) -> str:
        return "%s:result:%s" % (self.prefix, job_id)


def now_ms() -> int:
    """The time as Unix epoch milliseconds."""
    return int(time.time() * 1000)


def check_id(job_id: Any) -> str:
    """Returns @job_id if it is a valid job id, else raises ValueError."""
    if not isinstance(job_id, str) or not ID_RE.fullmatch(job_id):
        raise ValueError("invalid job id %r: want 1 to 128 characters of "
                         "A-Z a-z 0-9 . _ : -" % (job_id,))
    return job_id


def new_id() -> str:
    """A fresh job id such as ``exp-20261125-3f2a9c0d4e5b6a7f``."""
    return "exp-%s-%s" % (time.strftime("%Y%m%d", time.gmtime()), uuid.uuid4().hex[:16])


def text_of(value: Union[bytes, str]) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _reject_constant(name: str) -> Any:
    raise ValueError("%s is not JSON" % name)


def encode_job(job: Job, job_id: Optional[str] = None) -> Tuple[str, bytes]:
    """The id and the exact bytes to push for @job (see Client.enqueue)."""
    if isinstance(job, (str, bytes, bytearray)):
        return _encode_text(job, job_id)
    if not isinstance(job, Mapping):
        raise ValueError("a job is a dict or a JSON object as text, got %s"
                         % type(job).__name__)
    jid = _merge_id(job.get("id"), job_id)
    doc: Dict[str, Any] = {"id": jid}  # a copy: the caller's dict is left as it was
    doc.update((k, v) for k, v in job.items() if k != "id")
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = text.encode("utf-8")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
        raise ValueError("the job is not JSON-serialisable: %s" % e) from None
    return jid, data


def _encode_text(job: Union[str, bytes, bytearray], job_id: Optional[str]) -> Tuple[str, bytes]:
    """A job given as JSON text is pushed byte for byte (numbers keep their
    exact digits); a missing id is put in front of the other members."""
    if isinstance(job, (bytes, bytearray)):
        try:
            text = bytes(job).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError("the job document is not valid UTF-8: %s" % e) from None
    else:
        text = job
    top: List[List[Tuple[str, Any]]] = [[]]

    def keep_pairs(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
        top[0] = pairs  # the outermost object is parsed last
        return dict(pairs)

    try:
        doc = json.loads(text, object_pairs_hook=keep_pairs, parse_constant=_reject_constant)
    except ValueError as e:
        raise ValueError("the job document is not JSON: %s" % e) from None
    if not isinstance(doc, dict):
        raise ValueError("the job document must be a JSON object, got %s" % type(doc).__name__)
    ids = [v for k, v in top[0] if k == "id"]
    if len(ids) > 1:
        raise ValueError('the job document has %d "id" members' % len(ids))
    if ids and ids[0] is None:
        raise ValueError('the job document has "id": null; leave it out or give a string')
    jid = _merge_id(ids[0] if ids else None, job_id)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("the job document is not valid Unicode: %s" % e) from None
    if not ids:
        head = json.dumps({"id": jid})[:-1]  # '{"id": "..."' without the brace
        body = text.lstrip(" \t\r\n")[1:]  # after the object's '{'
        data = (head + ("," if doc else "") + body).encode("utf-8")
    return jid, data


def _merge_id(in_doc: Any, given: Optional[str]) -> str:
    if given is not None:
        check_id(given)
        if in_doc is not None and in_doc != given:
            raise ValueError("id %r does not match the job's id %r" % (given, in_doc))
        return given
    if in_doc is None:
        return new_id()
    return check_id(in_doc)


def enqueue_args(keys: "Keys", jid: str, data: bytes) -> Tuple[List[str], List[Any]]:
    """The keys and arguments of ENQUEUE_LUA for job @jid, document @data."""
    event = json.dumps({"id": jid, "state": "queued", "progress": 0}, separators=(",", ":"))
    return [keys.job(jid), keys.queue], [data, now_ms(), keys.events, event]


def enqueued(jid: str, reply: Any) -> str:
    """@jid once ENQUEUE_LUA has run; JobBusy when it refused."""
    outcome, state = (text_of(x) for x in reply)
    if outcome == "busy":
        raise JobBusy("job %s is %s already: wait for it, cancel it, or use another id"
                      % (jid, state), jid, state)
    return jid


def parse_status(raw: Mapping[Any, Any]) -> Optional[Status]:
    """HGETALL's answer as a typed dict, or None for a missing hash."""
    if not raw:
        return None
    out: Status = {}
    for k, v in raw.items():
        key, value = text_of(k), text_of(v)
        if key in INT_FIELDS or key.endswith("_at"):
            try:
                out[key] = int(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def outcome(job_id: str, st: Optional[Status]) -> Optional[Status]:
    """@st if the job succeeded, None while it runs; raises for the other ends."""
    if st is None:
        raise JobNotFound("job %s not found" % job_id, job_id)
    state = st.get("state")
    if state == "succeeded":
        return st
    if state == "failed":
        raise JobFailed("job %s failed: %s: %s" % (job_id, st.get("error_code", "?"),
                                                   st.get("error", "")), job_id, st)
    if state == "cancelled":
        raise JobCancelled("job %s was cancelled" % job_id, job_id, st)
    return None


def finished(job_id: str, st: Optional[Status]) -> Status:
    """@st if the job succeeded; raises JobNotReady while it runs, and as outcome()."""
    done = outcome(job_id, st)
    if done is None:
        raise JobNotReady("job %s has not finished (state %s)"
                          % (job_id, (st or {}).get("state")), job_id, st)
    return done


def result_key(keys: Keys, job_id: str, st: Status) -> str:
    """Where the workbook of a succeeded job is."""
    return st.get("result_key") or keys.result(job_id)


def check_result(job_id: str, st: Status, data: Optional[bytes]) -> bytes:
    """@data if it is the workbook @st describes, else raises ResultMissing/Mismatch."""
    if data is None:
        raise ResultMissing("the result of job %s is gone (expired or deleted)" % job_id,
                            job_id, st)
    data = data if isinstance(data, bytes) else bytes(data)
    want_len = st.get("result_bytes")
    if isinstance(want_len, int) and want_len != len(data):
        raise ResultMismatch("the result of job %s holds %d bytes, the status says %d"
                             % (job_id, len(data), want_len), job_id, st)
    want = st.get("result_sha256")
    got = hashlib.sha256(data).hexdigest()
    if not isinstance(want, str) or want.lower() != got:
        raise ResultMismatch("the result of job %s does not match its result_sha256 "
                             "(%s, stored bytes %s)" % (job_id, want, got), job_id, st)
    return data


def ends(job_id: str, message: Optional[Mapping[str, Any]]) -> bool:
    """Whether pub/sub @message is an event saying job @job_id has ended."""
    if not message or message.get("type") != "message":
        return False
    try:
        event = json.loads(message["data"])
    except (TypeError, ValueError):
        return False
    return (isinstance(event, dict) and event.get("id") == job_id
            and event.get("state") in TERMINAL)


def check_wait_args(timeout: Optional[float], poll_interval: float) -> None:
    if timeout is not None and not isinstance(timeout, (int, float)):
        raise ValueError("timeout must be a number of seconds or None, got %r" % (timeout,))
    if not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
        raise ValueError("poll_interval must be above 0 seconds, got %r" % (poll_interval,))
