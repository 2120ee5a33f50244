"""A redis-py client built from the worker's own variables.

``redis_from_env()`` reads what ``export-worker`` and ``exportctl`` read
(PROTOCOL.md section 4): ``EXPORT_REDIS_URL``, and with
``EXPORT_REDIS_SENTINELS`` the primary that the sentinels name for
``EXPORT_REDIS_MASTER`` (their own password in
``EXPORT_REDIS_SENTINEL_PASSWORD``), so that a backend configured like its
workers follows a failover as they do. As for the worker, an empty variable
counts as unset.
"""

from __future__ import annotations

import os
import re
from typing import Any, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

__all__ = ["redis_from_env", "parse_sentinels"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
SENTINEL_PORT = 26379

_ENTRY = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$")


def parse_sentinels(text: str) -> List[Tuple[str, int]]:
    """``host:port,...`` (an IPv6 host in ``[]``, port 26379 when left out,
    spaces around the commas ignored) as a list of ``(host, port)``."""
    out = []
    for n, entry in enumerate(text.split(","), 1):
        m = _ENTRY.match(entry.strip())
        port = int(m.group(3)) if m and m.group(3) else SENTINEL_PORT
        if not m or not 1 <= port <= 65535:
            raise ValueError("EXPORT_REDIS_SENTINELS: entry %d is not HOST[:PORT]" % n)
        out.append((m.group(1) or m.group(2), port))
    return out


def _get(environ: Mapping[str, str], name: str) -> Optional[str]:
    value = environ.get(name)
    return value if value else None


def redis_from_env(environ: Optional[Mapping[str, str]] = None, asyncio: bool = False,
                   **kwargs: Any) -> Any:
    """A ``redis.Redis`` (or, with ``asyncio=True``, a ``redis.asyncio.Redis``)
    for the deployment that @environ (default ``os.environ``) describes.

    Without ``EXPORT_REDIS_SENTINELS`` it is ``Redis.from_url(EXPORT_REDIS_URL)``.
    With it, it is the sentinels' client of the primary ``EXPORT_REDIS_MASTER``
    (``Sentinel(...).master_for(...)``), which asks the sentinels again after a
    failover; the URL then gives only the user, password and database, and its
    host may be left out (``redis://:password@/2``). Extra keyword arguments go
    to the connections (``socket_timeout=5``...). Raises ``ValueError`` for
    settings the worker would refuse too.
    """
    env = os.environ if environ is None else environ
    url = _get(env, "EXPORT_REDIS_URL") or DEFAULT_URL
    sentinels = _get(env, "EXPORT_REDIS_SENTINELS")
    if sentinels is None:
        if asyncio:
            import redis.asyncio
            return redis.asyncio.Redis.from_url(url, **kwargs)
        import redis
        return redis.Redis.from_url(url, **kwargs)

    master = _get(env, "EXPORT_REDIS_MASTER")
    if master is None:
        raise ValueError("EXPORT_REDIS_MASTER: required with EXPORT_REDIS_SENTINELS")
    parts = urlsplit(url)
    if parts.scheme.lower() != "redis":
        raise ValueError("EXPORT_REDIS_URL: must be redis:// with EXPORT_REDIS_SENTINELS")
    db_text = parts.path.lstrip("/") or "0"
    if not db_text.isdigit():
        raise ValueError("EXPORT_REDIS_URL: the database after / must be a number")
    conn: dict = {"db": int(db_text)}
    if parts.username:
        conn["username"] = unquote(parts.username)
    if parts.password:
        conn["password"] = unquote(parts.password)
    conn.update(kwargs)
    sentinel_kwargs: dict = {}
    sentinel_password = _get(env, "EXPORT_REDIS_SENTINEL_PASSWORD")
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in kwargs:
            sentinel_kwargs[name] = kwargs[name]
    if asyncio:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel
        return AsyncSentinel(parse_sentinels(sentinels),
                             sentinel_kwargs=sentinel_kwargs).master_for(master, **conn)
    from redis.sentinel import Sentinel
    return Sentinel(parse_sentinels(sentinels),
                    sentinel_kwargs=sentinel_kwargs).master_for(master, **conn)
