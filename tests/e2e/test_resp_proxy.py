"""The fault proxy itself (resp_proxy.py), against the test's redis-server:
it passes pipelines and large values through unchanged and in order, and
each rule does what it says (an injected error in its place in a pipeline,
a dropped reply after Redis ran the command, a connection closed for a
while, a delay), with scripts matched by name through EVALSHA and EVAL."""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import resp_proxy  # noqa: E402
from resp_proxy import RespClient, RespProxy, command, non_nil_bulk, script  # noqa: E402

SCRIPT = b"return redis.call('INCR', KEYS[1])\n"
SHA = hashlib.sha1(SCRIPT).hexdigest()


class Parser(unittest.TestCase):

    def test_messages_split_anywhere(self):
        raw = (b"+OK\r\n-ERR bad\r\n:42\r\n$-1\r\n$5\r\nhe\r\no\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n"
               b"*-1\r\n")
        for step in (1, 2, 3, 7, len(raw)):
            stream = resp_proxy._Stream(resp_proxy.parse_reply)
            got = []
            for i in range(0, len(raw), step):
                got.extend(stream.feed(raw[i:i + step]))
            self.assertEqual(b"".join(r for _, r in got), raw)
            kinds = [(m.kind, m.value if m.kind != "*" or m.value is None else len(m.value))
                     for m, _ in got]
            self.assertEqual(kinds, [("+", b"OK"), ("-", b"ERR bad"), (":", 42), ("$", None),
                                     ("$", b"he\r\no"), ("*", 2), ("*", None)])

    def test_requests_array_and_inline(self):
        stream = resp_proxy._Stream(resp_proxy.parse_request)
        raw = resp_proxy.encode("SET", "k", b"v\r\n") + b"PING\r\n" + resp_proxy.encode("GET", "k")
        got = stream.feed(raw[:10]) + stream.feed(raw[10:])
        self.assertEqual([m for m, _ in got], [[b"SET", b"k", b"v\r\n"], [b"PING"], [b"GET", b"k"]])


class Proxy(harness.E2ETest):

    def setUp(self):
        super().setUp()
        port = self.r.connection_pool.connection_kwargs["port"]
        self.proxy = RespProxy(port, scripts={"incr": SCRIPT})
        self.addCleanup(self.proxy.stop)

    def client(self):
        c = RespClient(self.proxy.port)
        self.addCleanup(c.close)
        return c

    def test_pipeline_and_large_values_pass_unchanged(self):
        c = self.client()
        big = os.urandom(5 << 20)
        k = self.key("big")
        self.assertEqual(c.call("SET", k, big).value, b"OK")
        self.assertEqual(c.call("GET", k).value, big)
        cmds = [("RPUSH", self.key("l"), str(i)) for i in range(2000)]
        self.assertEqual([r.value for r in c.pipeline(cmds)], list(range(1, 2001)))
        got = c.call("LRANGE", self.key("l"), 0, -1)
        self.assertEqual([x.value for x in got.value], [str(i).encode() for i in range(2000)])
        self.assertGreaterEqual(self.proxy.count("RPUSH"), 2000)

    def test_injected_error_keeps_its_place_in_a_pipeline(self):
        c = self.client()
        k = self.key("k")
        rule = self.proxy.inject_error(command("get"), b"BUSY Redis is busy", times=2)
        replies = c.pipeline([("SET", k, "v"), ("GET", k), ("INCR", self.key("n")), ("GET", k),
                              ("GET", k)])
        self.assertEqual([(r.kind, r.value) for r in replies],
                         [("+", b"OK"), ("-", b"BUSY Redis is busy"), (":", 1),
                          ("-", b"BUSY Redis is busy"), ("$", b"v")])
        self.assertEqual(len(rule.hits), 2)

    def test_drop_reply_of_a_blmove_that_moved_something(self):
        src, dst = self.key("src"), self.key("dst")
        rule = self.proxy.drop_reply_and_close(command("BLMOVE"), reply=non_nil_bulk)
        c = self.client()
        # Nothing to move: the nil reply passes.
        r = c.call("BLMOVE", src, dst, "RIGHT", "LEFT", "0.2")
        self.assertIsNone(r.value)
        self.assertFalse(rule.fired.is_set())
        self.r.lpush(src, b"job")
        with self.assertRaises(OSError):
            c.call("BLMOVE", src, dst, "RIGHT", "LEFT", "1")
        self.assertTrue(rule.fired.is_set())
        # Redis ran it: the element moved.
        self.assertEqual(self.r.lrange(dst, 0, -1), [b"job"])
        # Once only: the next one passes.
        c2 = self.client()
        self.r.lpush(src, b"two")
        self.assertEqual(c2.call("BLMOVE", src, dst, "RIGHT", "LEFT", "1").value, b"two")

    def test_scripts_matched_by_name_in_evalsha_and_eval(self):
        k = self.key("n")
        c = self.client()
        self.assertEqual(c.call("SCRIPT", "LOAD", SCRIPT).value, SHA.encode())
        rule = self.proxy.inject_error(script("incr"), b"LOADING Redis is loading", times=2)
        self.assertEqual(c.call("EVALSHA", SHA, 1, k).value, b"LOADING Redis is loading")
        self.assertEqual(c.call("EVAL", SCRIPT, 1, k).value, b"LOADING Redis is loading")
        self.assertEqual(c.call("EVALSHA", SHA.upper(), 1, k).value, 1)
        self.assertEqual(c.call("EVAL", SCRIPT + b" ", 1, k).value, 2)  # another body
        self.assertEqual(self.proxy.count("script:incr"), 3)
        self.assertEqual(len(rule.hits), 2)
        self.assertIsNone(self.proxy.scripts.name_of([b"EVALSHA", b"0" * 40, b"0"]))

    def test_script_reply_dropped_after_redis_ran_it(self):
        k = self.key("n")
        rule = self.proxy.drop_reply_and_close(script("incr"))
        c = self.client()
        with self.assertRaises(OSError):
            c.call("EVAL", SCRIPT, 1, k)
        self.assertTrue(rule.fired.is_set())
        self.assertEqual(self.r.get(k), b"1")

    def test_close_on_for_a_while(self):
        self.proxy.close_on(command("PING"), seconds=1.0)
        t0 = time.monotonic()
        closed = 0
        while time.monotonic() - t0 < 0.8:
            c = RespClient(self.proxy.port)
            try:
                c.call("PING")
            except OSError:
                closed += 1
            finally:
                c.close()
            time.sleep(0.1)
        self.assertGreaterEqual(closed, 5)
        time.sleep(0.4)
        c = self.client()
        self.assertEqual(c.call("PING").value, b"PONG")

    def test_delay_and_cut(self):
        self.proxy.delay(command("INCR"), 0.5, times=1)
        c = self.client()
        t0 = time.monotonic()
        self.assertEqual(c.call("INCR", self.key("d")).value, 1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        t0 = time.monotonic()
        self.assertEqual(c.call("INCR", self.key("d")).value, 2)
        self.assertLess(time.monotonic() - t0, 0.3)
        self.proxy.delay_reply(command("INCR"), 0.5, times=1)
        t0 = time.monotonic()
        self.assertEqual(c.call("INCR", self.key("d")).value, 3)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.proxy.cut()
        with self.assertRaises(OSError):
            c.call("PING")
        self.assertEqual(self.client().call("PING").value, b"PONG")

    def test_worker_scripts_found(self):
        """The worker's scripts, where the fault tests look for them."""
        names = resp_proxy.Scripts().names()
        print("\n  scripts in %s: %s" % (os.path.normpath(resp_proxy.LUA_DIR), names or "none"))
        for name in ("start", "finish"):
            self.assertIn(name, names, "no common/lua/%s.lua: the fault tests cannot match it"
                          % name)


if __name__ == "__main__":
    harness.main()
