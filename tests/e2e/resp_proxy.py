"""A fault-injecting Redis proxy for the end-to-end tests (stdlib only).

RespProxy listens on a loopback port and forwards every connection to a
Redis server, parsing RESP in both directions: requests (pipelined or not)
and replies, matched to each other in order. Rules decide, per command, to
forward it, to answer it with an injected error instead, to close the
connection instead, to delay it, or to drop its reply and close both sides
(Redis ran the command but the client never hears of it). Threads only,
as harness.TcpProxy; stop() ends them.

    proxy = RespProxy(redis_port)
    proxy.drop_reply_and_close(command("BLMOVE"), reply=non_nil_bulk)
    proxy.close_on(script("finish"), seconds=30)
    proxy.inject_error(script("start"), b"BUSY Redis is busy", times=3)
    proxy.delay(writes_key(upload_key), 0.5)

Scripts are named as the worker's files common/lua/<name>.lua: an EVALSHA
whose sha1 is that of the file's bytes, or an EVAL whose body is the file.
RespClient is a small synchronous client on the same parser, for tests that
want raw RESP (pipelines, exact errors) without redis-py's retries.
"""

import glob
import hashlib
import os
import socket
import threading
import time

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "common", "lua")


# ---------------------------------------------------------------------------
# RESP.

class Incomplete(Exception):
    """The buffer does not hold a whole message yet; .need is a length the
    buffer must reach before parsing again is worth it."""

    def __init__(self, need):
        super().__init__(need)
        self.need = need


class Reply:
    """One parsed reply: kind is its RESP type byte ('+', '-', ':', '$', '*',
    or a RESP3 one), value bytes, an int, a list of Reply, or None (nil)."""

    __slots__ = ("kind", "value")

    def __init__(self, kind, value):
        self.kind = kind
        self.value = value

    def is_error(self):
        return self.kind == "-"

    def __repr__(self):
        v = self.value
        if isinstance(v, (bytes, bytearray)) and len(v) > 60:
            v = bytes(v[:60]) + b"..."
        return "Reply(%r, %r)" % (self.kind, v)


_LINE_KINDS = "+-:_,#("
_BULK_KINDS = "$=!"
_AGGREGATE_KINDS = "*~>%|"


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete(len(buf) + 1)
    return bytes(buf[pos:end]), end + 2


def parse_reply(buf, pos=0):
    """(Reply, position after it) of the message at @pos of @buf."""
    if pos >= len(buf):
        raise Incomplete(pos + 1)
    kind = chr(buf[pos])
    head, after = _line(buf, pos + 1)
    if kind in _LINE_KINDS:
        if kind in ":(":
            return Reply(kind, int(head)), after
        return Reply(kind, head), after
    if kind in _BULK_KINDS:
        n = int(head)
        if n < 0:
            return Reply(kind, None), after
        if len(buf) < after + n + 2:
            raise Incomplete(after + n + 2)
        return Reply(kind, bytes(buf[after:after + n])), after + n + 2
    if kind in _AGGREGATE_KINDS:
        n = int(head)
        if n < 0:
            return Reply(kind, None), after
        if kind in "%|":
            n *= 2
        items = []
        for _ in range(n):
            item, after = parse_reply(buf, after)
            items.append(item)
        return Reply(kind, items), after
    raise ValueError("not RESP: %r" % bytes(buf[pos:pos + 40]))


def parse_request(buf, pos=0):
    """([argument bytes], position after it) of the command at @pos: a RESP
    array of bulk strings, or an inline command."""
    if pos >= len(buf):
        raise Incomplete(pos + 1)
    if buf[pos:pos + 1] != b"*":
        line, after = _line(buf, pos)
        return line.split(), after
    reply, after = parse_reply(buf, pos)
    return [item.value for item in reply.value or []], after


def encode(*args):
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def error_reply(text):
    """An error reply's bytes; @text is its first word and message."""
    if isinstance(text, str):
        text = text.encode()
    return b"-" + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


class _Stream:
    """Bytes in, whole messages out, without re-parsing a large message on
    every read."""

    def __init__(self, parse):
        self.buf = bytearray()
        self.need = 0
        self.parse = parse

    def feed(self, data):
        """[(parsed message, raw bytes)] completed by @data."""
        self.buf += data
        out = []
        while self.buf and len(self.buf) >= self.need:
            try:
                msg, end = self.parse(self.buf, 0)
            except Incomplete as e:
                self.need = e.need
                break
            out.append((msg, bytes(self.buf[:end])))
            del self.buf[:end]
            self.need = 0
        return out


# ---------------------------------------------------------------------------
# Matching commands and replies.

class Scripts:
    """The worker's Lua scripts by name: sha1 and body of each
    common/lua/<name>.lua, plus any given as {name: body}."""

    def __init__(self, extra=None, lua_dir=LUA_DIR):
        self.by_sha = {}
        self.by_body = {}
        for path in sorted(glob.glob(os.path.join(lua_dir, "*.lua"))):
            with open(path, "rb") as f:
                self.add(os.path.basename(path)[:-4], f.read())
        for name, body in (extra or {}).items():
            self.add(name, body if isinstance(body, bytes) else body.encode())

    def add(self, name, body):
        self.by_sha[hashlib.sha1(body).hexdigest()] = name
        self.by_body[body] = name

    def names(self):
        return sorted(set(self.by_sha.values()))

    def name_of(self, cmd):
        """The script name a command runs (EVAL/EVALSHA and their _RO forms),
        or None."""
        if len(cmd) < 2:
            return None
        verb = cmd[0].upper()
        if verb in (b"EVALSHA", b"EVALSHA_RO"):
            return self.by_sha.get(cmd[1].decode("ascii", "replace").lower())
        if verb in (b"EVAL", b"EVAL_RO"):
            return self.by_body.get(bytes(cmd[1]))
        return None


def command(*names):
    """Matches commands named one of @names (any case)."""
    want = {n.upper().encode() for n in names}
    return lambda proxy, cmd: bool(cmd) and cmd[0].upper() in want


def script(*names):
    """Matches EVAL/EVALSHA of the worker's scripts @names (common/lua/<name>.lua)."""
    want = set(names)
    return lambda proxy, cmd: proxy.scripts.name_of(cmd) in want


def writes_key(predicate):
    """Matches commands with an argument (a key, among the first few short
    ones) for which @predicate(bytes) is true: SET/APPEND/SETRANGE of a key,
    or an EVAL/EVALSHA naming it."""
    def match(proxy, cmd):
        return any(len(a) < 512 and predicate(bytes(a)) for a in cmd[1:8])
    return match


def any_of(*matchers):
    return lambda proxy, cmd: any(m(proxy, cmd) for m in matchers)


def non_nil_bulk(reply):
    """A reply that carried a value (BLMOVE that moved something)."""
    return reply.kind in _BULK_KINDS and reply.value is not None


def not_error(reply):
    return not reply.is_error()


class Rule:
    """One fault. @when is "request" (acts instead of forwarding) or "reply"
    (acts on the reply Redis sent). Active while enabled, for @times hits
    (None: any number) and until @seconds after it was added (None: no end).
    .hits lists (wall ms, monotonic seconds, command name) of each time it
    acted; .fired is set at the first."""

    def __init__(self, name, when, match, action, reply=None, error=None, delay=0.0,
                 times=None, seconds=None):
        self.name = name
        self.when = when
        self.match = match
        self.reply_match = reply
        self.action = action
        self.error = error
        self.delay_s = delay
        self.times = times
        self.until = None if seconds is None else time.monotonic() + seconds
        self.enabled = True
        self.hits = []
        self.fired = threading.Event()

    def active(self):
        return (self.enabled and (self.times is None or len(self.hits) < self.times)
                and (self.until is None or time.monotonic() < self.until))

    def hit(self, cmd):
        self.hits.append((int(time.time() * 1000), time.monotonic(),
                          bytes(cmd[0]).decode("ascii", "replace") if cmd else ""))
        self.fired.set()

    def disable(self):
        self.enabled = False


# ---------------------------------------------------------------------------
# The proxy.

def send_all(sock, data, going):
    """sock.sendall(data) on a socket with a timeout, which bounds each wait
    for room rather than the whole send (sendall's timeout is the total): a
    reader that takes a large reply slowly, as a sanitizer build does, is no
    reason to cut it off. Gives up (OSError) once going() is false."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except socket.timeout:
            if not going():
                raise

class _Pending:
    __slots__ = ("cmd", "raw", "ready")

    def __init__(self, cmd, raw=None):
        self.cmd = cmd
        self.raw = raw  # the reply's bytes once known
        self.ready = raw is not None


class _Conn:
    def __init__(self, proxy, client, up):
        self.proxy = proxy
        self.client = client
        self.up = up
        self.lock = threading.Lock()
        self.pending = []  # requests in order, waiting for their reply
        self.closed = False

    def going(self):
        return not self.closed and not self.proxy._stop.is_set()

    def close(self):
        with self.lock:
            self.closed = True
        for s in (self.client, self.up):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _flush_locked(self):
        while self.pending and self.pending[0].ready:
            entry = self.pending.pop(0)
            try:
                send_all(self.client, entry.raw, self.going)
            except OSError:
                self.closed = True
                return

    def requests(self):
        stream = _Stream(parse_request)
        self.client.settimeout(0.2)
        try:
            while self.going():
                try:
                    data = self.client.recv(1 << 16)
                except socket.timeout:
                    continue
                if not data:
                    break
                for cmd, raw in stream.feed(data):
                    if not self.on_request(cmd, raw):
                        return
        except (OSError, ValueError):
            pass
        finally:
            self.close()

    def on_request(self, cmd, raw):
        """False when the connection is to end."""
        proxy = self.proxy
        proxy._count(cmd)
        rule = proxy._find("request", cmd)
        if rule is not None and rule.action == "delay":
            time.sleep(rule.delay_s)
        elif rule is not None and rule.action == "close":
            self.close()
            return False
        elif rule is not None and rule.action == "error":
            with self.lock:
                self.pending.append(_Pending(cmd, error_reply(rule.error)))
                self._flush_locked()
            return True
        with self.lock:
            if self.closed:
                return False
            self.pending.append(_Pending(cmd))
        send_all(self.up, raw, self.going)
        return True

    def replies(self):
        stream = _Stream(parse_reply)
        self.up.settimeout(0.2)
        try:
            while self.going():
                try:
                    data = self.up.recv(1 << 16)
                except socket.timeout:
                    continue
                if not data:
                    break
                for reply, raw in stream.feed(data):
                    if not self.on_reply(reply, raw):
                        return
        except (OSError, ValueError):
            pass
        finally:
            self.close()

    def on_reply(self, reply, raw):
        with self.lock:
            entry = next((p for p in self.pending if not p.ready), None)
            if entry is None:  # a reply to nothing (RESP3 push): pass it on
                entry = _Pending([], raw)
                self.pending.append(entry)
            cmd = entry.cmd
        rule = self.proxy._find("reply", cmd, reply)
        if rule is not None and rule.action == "drop_close":
            self.close()
            return False
        if rule is not None and rule.action == "delay":
            time.sleep(rule.delay_s)
        with self.lock:
            entry.raw = raw
            entry.ready = True
            self._flush_locked()
            return not self.closed


class RespProxy:
    """A loopback proxy to 127.0.0.1:@port with fault rules (module doc)."""

    def __init__(self, port, scripts=None):
        self.upstream = port
        self.scripts = scripts if isinstance(scripts, Scripts) else Scripts(scripts)
        self._lsock = socket.socket()
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self._lsock.settimeout(0.1)
        self.port = self._lsock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns = set()
        self.rules = []
        self.counts = {}  # command or "script:<name>" -> requests seen
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, db=0, user=None, password=None):
        auth = "%s:%s@" % (user or "", password) if password is not None else ""
        return "redis://%s127.0.0.1:%d/%d" % (auth, self.port, db)

    # -- rules ---------------------------------------------------------------
    def add(self, rule):
        with self._lock:
            self.rules.append(rule)
        return rule

    def drop_reply_and_close(self, match, reply=None, times=1, seconds=None):
        """Redis runs the command; its reply (when @reply(Reply) is true) is
        dropped and both sides of the connection are closed."""
        return self.add(Rule("drop_reply_and_close", "reply", match, "drop_close", reply=reply,
                             times=times, seconds=seconds))

    def close_on(self, match, times=None, seconds=None):
        """The command is not forwarded; the connection is closed instead."""
        return self.add(Rule("close_on", "request", match, "close", times=times,
                             seconds=seconds))

    def inject_error(self, match, error, times=None, seconds=None):
        """The command is not forwarded; the client gets error reply @error
        (e.g. b"BUSY Redis is busy running a script") in its place, in order."""
        return self.add(Rule("inject_error", "request", match, "error", error=error,
                             times=times, seconds=seconds))

    def delay(self, match, seconds_each, times=None, seconds=None):
        """The command is held @seconds_each before it is forwarded (what
        follows it on its connection waits too)."""
        return self.add(Rule("delay", "request", match, "delay", delay=seconds_each,
                             times=times, seconds=seconds))

    def delay_reply(self, match, seconds_each, reply=None, times=None, seconds=None):
        """Redis runs the command at once; its reply is held @seconds_each."""
        return self.add(Rule("delay_reply", "reply", match, "delay", reply=reply,
                             delay=seconds_each, times=times, seconds=seconds))

    def clear(self):
        """Disables every rule (the link mends)."""
        with self._lock:
            for rule in self.rules:
                rule.disable()

    def _find(self, when, cmd, reply=None):
        with self._lock:
            for rule in self.rules:
                if rule.when != when or not rule.active() or not rule.match(self, cmd):
                    continue
                if reply is not None and rule.reply_match is not None \
                        and not rule.reply_match(reply):
                    continue
                rule.hit(cmd)
                return rule
        return None

    def _count(self, cmd):
        if not cmd:
            return
        name = self.scripts.name_of(cmd)
        key = "script:" + name if name else bytes(cmd[0]).upper().decode("ascii", "replace")
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def count(self, name):
        """Requests seen of command @name (upper case) or "script:<name>"."""
        with self._lock:
            return self.counts.get(name, 0)

    # -- connections -----------------------------------------------------------
    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                client.close()
                continue
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, up)
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            threads = [threading.Thread(target=conn.requests, daemon=True),
                       threading.Thread(target=conn.replies, daemon=True)]
            for t in threads:
                t.start()
            threading.Thread(target=self._reap, args=(conn, threads), daemon=True).start()

    def _reap(self, conn, threads):
        for t in threads:
            t.join()
        for s in (conn.client, conn.up):
            s.close()
        with self._lock:
            self._conns.discard(conn)

    def cut(self):
        """Closes every open connection (new ones are still accepted)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()

    def stop(self):
        self._stop.set()
        self.cut()
        self._thread.join(2)
        self._lsock.close()


# ---------------------------------------------------------------------------
# A small client.

class RespClient:
    """A blocking RESP2 client on one socket: call() sends one command and
    returns its Reply; pipeline() sends several at once. Connection errors
    raise OSError (no retries)."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.stream = _Stream(parse_reply)
        self.ready = []

    def _read(self):
        while not self.ready:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionResetError("connection closed")
            self.ready.extend(m for m, _ in self.stream.feed(data))
        return self.ready.pop(0)

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self._read()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(encode(*c) for c in commands))
        return [self._read() for _ in commands]

    def close(self):
        self.sock.close()
