"""Redis Cluster and Redis Sentinel groups on loopback, for the topology tests
(test_cluster.py, test_sentinel.py).

Every process listens on ports chosen free at run time, keeps its files in a
folder of the test's, dies with the test process (PR_SET_PDEATHSIG) and is
stopped by pid, never by name. Readiness is always polled with a deadline.
"""

import os
import shutil
import signal
import subprocess
import time

import redis

from harness import _die_with_parent, free_port, read_text, stop_process

SERVER = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin") or "redis-server"
CLI = shutil.which("redis-cli", path="/usr/bin:/usr/sbin:/bin") or "redis-cli"


def free_ports(n):
    """@n distinct TCP ports of 127.0.0.1 that were free a moment ago."""
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def wait_for(what, predicate, timeout, interval=0.05):
    """Polls @predicate until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError) as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last error: %s)"
                         % (timeout, what, last_error))


class Proc:
    """One redis-server (or sentinel) process with its folder and log."""

    def __init__(self, workdir, name, args):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SERVER] + list(args), cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, preexec_fn=_die_with_parent)

    def running(self):
        return self.proc.poll() is None

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        stop_process(self.proc, 10)
        self._log.close()

    def log(self):
        return read_text(self.log_path)


def client(port, **kwargs):
    kwargs.setdefault("socket_timeout", 2)
    kwargs.setdefault("socket_connect_timeout", 2)
    return redis.Redis(host="127.0.0.1", port=port, **kwargs)


class Cluster:
    """@primaries primaries with @replicas replicas each, made with
    redis-cli --cluster create. Nodes are addressed by port."""

    def __init__(self, workdir, primaries=3, replicas=1, node_timeout_ms=1000):
        n = primaries * (replicas + 1)
        ports = free_ports(2 * n)
        self.ports = ports[:n]
        self.nodes = {}
        for port, bus in zip(self.ports, ports[n:]):
            self.nodes[port] = Proc(workdir, "node-%d" % port, [
                "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--maxmemory-policy", "noeviction"])
        for port in self.ports:
            wait_for("cluster node %d" % port, lambda p=port: client(p).ping(), 10)
        out = subprocess.run(
            [CLI, "--cluster", "create"] + ["127.0.0.1:%d" % p for p in self.ports]
            + ["--cluster-replicas", str(replicas), "--cluster-yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=60)
        if out.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n%s"
                                 % out.stdout.decode("utf-8", "replace"))
        for port in self.ports:
            wait_for("cluster_state:ok on %d" % port,
                     lambda p=port: b"cluster_state:ok" in client(p).execute_command(
                         "CLUSTER", "INFO"), 30)
        # Every node must agree on who owns what, and every replica be in
        # sync (a replica that never synced cannot take over), before the
        # tests start.
        wait_for("a settled slot map", self._settled, 30)
        wait_for("every replica in sync", self._replicas_synced, 30)

    def _settled(self):
        maps = [self.slot_map(p) for p in self.live_ports()]
        return all(m == maps[0] for m in maps) and len(maps[0]) == 16384

    def _replicas_synced(self):
        for port in self.live_ports():
            info = client(port).info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def live_ports(self):
        return [p for p, node in self.nodes.items() if node.running()]

    def slot_map(self, port):
        """{slot: owner port} as node @port sees it."""
        out = {}
        for lo, hi, owner, *_ in client(port).execute_command("CLUSTER", "SLOTS"):
            for s in range(lo, hi + 1):
                out[s] = int(owner[1])
        return out

    def owner(self, slot, ask=None):
        """The port of the primary of @slot, as node @ask (any live one) says."""
        ask = ask or self.live_ports()[0]
        for lo, hi, owner, *_ in client(ask).execute_command("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                return int(owner[1])
        return None

    def primaries(self):
        out = set()
        for lo, hi, owner, *_ in client(self.live_ports()[0]).execute_command("CLUSTER",
                                                                              "SLOTS"):
            out.add(int(owner[1]))
        return sorted(out)

    def node_id(self, port):
        return client(port).execute_command("CLUSTER", "MYID").decode()

    def keyslot(self, key):
        return client(self.live_ports()[0]).execute_command("CLUSTER", "KEYSLOT", key)

    def cluster_client(self):
        """A cluster-aware redis-py client (RedisCluster, redis-py 4.1+)."""
        from redis.cluster import RedisCluster
        return RedisCluster(host="127.0.0.1", port=self.live_ports()[0], socket_timeout=2,
                            socket_connect_timeout=2)

    def url(self, port, password=None):
        return "redis://%s127.0.0.1:%d/0" % (":%s@" % password if password else "", port)

    def stop(self):
        for node in self.nodes.values():
            node.stop()

    def logs(self):
        return "\n".join("---- node %d ----\n%s" % (p, n.log()[-3000:])
                         for p, n in self.nodes.items())


class SentinelGroup:
    """One primary, one replica and @nsentinels sentinels that watch them as
    @name. @password: the data nodes' requirepass (also given to the
    sentinels as auth-pass); @sentinel_password: the sentinels' own."""

    def __init__(self, workdir, name="mymaster", nsentinels=3, password=None,
                 sentinel_password=None, down_after_ms=1000, failover_timeout_ms=4000):
        self.name = name
        self.password = password
        self.sentinel_password = sentinel_password
        ports = free_ports(2 + nsentinels)
        self.primary_port, self.replica_port = ports[0], ports[1]
        self.sentinel_ports = ports[2:]
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                  "--maxmemory-policy", "noeviction"] + auth
        self.data = {
            self.primary_port: Proc(workdir, "data-%d" % self.primary_port,
                                    ["--port", str(self.primary_port)] + common),
            self.replica_port: Proc(workdir, "data-%d" % self.replica_port,
                                    ["--port", str(self.replica_port), "--replicaof",
                                     "127.0.0.1", str(self.primary_port)] + common),
        }
        wait_for("the replica in sync",
                 lambda: self.data_client(self.replica_port).info("replication").get(
                     "master_link_status") == "up", 20)
        self.sentinels = {}
        for port in self.sentinel_ports:
            d = os.path.join(workdir, "sentinel-%d" % port)
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            lines = ["port %d" % port, "bind 127.0.0.1", "dir %s" % d, "daemonize no",
                     "sentinel monitor %s 127.0.0.1 %d 2" % (name, self.primary_port),
                     "sentinel down-after-milliseconds %s %d" % (name, down_after_ms),
                     "sentinel failover-timeout %s %d" % (name, failover_timeout_ms),
                     "sentinel parallel-syncs %s 1" % name]
            if password:
                lines.append("sentinel auth-pass %s %s" % (name, password))
            if sentinel_password:
                lines += ["requirepass %s" % sentinel_password,
                          "sentinel sentinel-pass %s" % sentinel_password]
            with open(conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            self.sentinels[port] = Proc(workdir, "sentinel-%d" % port, [conf, "--sentinel"])
        for port in self.sentinel_ports:
            wait_for("sentinel %d to see the replica and the other sentinels" % port,
                     lambda p=port: self._sentinel_ready(p, nsentinels), 30)

    def _sentinel_ready(self, port, nsentinels):
        info = self.sentinel_client(port).execute_command("SENTINEL", "MASTER", self.name)
        fields = dict(zip(info[::2], info[1::2]))
        return (int(fields[b"num-slaves"]) >= 1
                and int(fields[b"num-other-sentinels"]) >= nsentinels - 1)

    def sentinel_client(self, port):
        return client(port, password=self.sentinel_password)

    def data_client(self, port):
        return client(port, password=self.password)

    def primary_addr(self):
        """The primary's port as the first live sentinel names it."""
        for port, s in self.sentinels.items():
            if not s.running():
                continue
            try:
                host, p = self.sentinel_client(port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                return int(p)
            except redis.RedisError:
                continue
        return None

    def sentinels_env(self):
        return ",".join("127.0.0.1:%d" % p for p in self.sentinel_ports)

    def redis_py(self):
        """A redis-py client of the primary, through the sentinels."""
        from redis.sentinel import Sentinel
        kwargs = {"password": self.sentinel_password} if self.sentinel_password else {}
        s = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=2,
                     sentinel_kwargs=kwargs)
        return s.master_for(self.name, socket_timeout=2, password=self.password)

    def stop(self):
        for p in list(self.sentinels.values()) + list(self.data.values()):
            p.stop()

    def logs(self):
        return "\n".join("---- %s ----\n%s" % (os.path.basename(p.dir), p.log()[-3000:])
                         for p in list(self.sentinels.values()) + list(self.data.values()))
