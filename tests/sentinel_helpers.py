"""A Redis master, its replica and three sentinels on loopback: real redis-server processes (the sentinels are
``redis-server --sentinel``), for the failover tests and the chaos bench (bench/ puts tests/ on sys.path, as for sip_bench's helpers).

    site = SentinelSite(tmp_path, first_port).start()   # 5 ports: master, replica, 3 sentinels
    url = site.url()                                    # redis+sentinel://127.0.0.1:p,.../ccmaster/0
    site.failover()                                     # SENTINEL FAILOVER, then wait for the new roles
    site.kill_master()                                  # SIGKILL, sentinels elect the replica, old one back

Each wait is bounded and polls the servers' own view (sentinels' address for the master, the nodes'
ROLE and replication link); a wait that runs out raises with what was last seen.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from callcenter.redis_server import ZSET_LISTPACK_MAX
from callcenter.redisurl import Durability, sentinel_url, with_durability

MASTER_NAME = "ccmaster"
DOWN_AFTER_MS = 1000     # a master silent this long is subjectively down (default 30 s in production)
FAILOVER_TIMEOUT_MS = 4000


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2,
                       socket_connect_timeout=1)


def wait_for(what: str, check: Any, timeout: float = 30.0, poll: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something true (errors count as not yet); that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = check()
        except (redis.RedisError, OSError) as exc:
            got, last = None, exc
        else:
            last = got
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout}s (last seen: {last!r})")


class Node:
    """One redis-server process (a data node or a sentinel) with its own directory and port."""

    def __init__(self, directory: Path, port: int, args: list[str]) -> None:
        self.directory = directory
        self.port = port
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, *self.args], cwd=self.directory, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(f"redis on port {self.port} answers", lambda: _client(self.port).ping(), timeout=10)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> redis.Redis:
        return _client(self.port)


class SentinelSite:
    """Master + replica + 3 sentinels (quorum 2) on 127.0.0.1, ports ``first_port`` .. ``first_port + 4``.

    ``min_replicas`` > 0 sets ``min-replicas-to-write`` on both data nodes (a master without a replica
    acknowledging within ``min-replicas-max-lag`` 10 s refuses writes)."""

    def __init__(self, directory: Path, first_port: int, *, min_replicas: int = 0) -> None:
        self.directory = Path(directory)
        ports = list(range(first_port, first_port + 5))
        self.data = [self._data_node(i, p, ports[0], min_replicas) for i, p in enumerate(ports[:2])]
        self.sentinels = [self._sentinel(i, p, ports[0]) for i, p in enumerate(ports[2:])]

    def _data_node(self, i: int, port: int, master_port: int, min_replicas: int) -> Node:
        d = self.directory / f"redis{i}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "redis.conf"   # Sentinel rewrites it (CONFIG REWRITE): a restarted node keeps its role
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\nappendonly yes\nappendfsync everysec\n"
                        f'save ""\nlogfile {d / "redis.log"}\nzset-max-listpack-entries {ZSET_LISTPACK_MAX}\n'
                        f"min-replicas-to-write {min_replicas}\n"
                        + (f"replicaof 127.0.0.1 {master_port}\n" if i else ""))
        return Node(d, port, [str(conf)])

    def _sentinel(self, i: int, port: int, master_port: int) -> Node:
        d = self.directory / f"sentinel{i}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "sentinel.conf"      # the sentinel rewrites it (known replicas, other sentinels, epoch)
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {d / 'sentinel.log'}\n"
                        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                        f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        return Node(d, port, [str(conf), "--sentinel"])

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> SentinelSite:
        for node in self.data:
            node.start()
        self.wait_replicated()
        for s in self.sentinels:
            s.start()
        self.wait_agreed()
        return self

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.stop()

    def url(self, durable: Durability | None = None) -> str:
        return with_durability(sentinel_url([f"127.0.0.1:{s.port}" for s in self.sentinels], MASTER_NAME),
                               durable or Durability())

    # -- what the site looks like -----------------------------------------------------------------------

    def master(self) -> Node:
        """The data node every sentinel names as master (after :meth:`wait_agreed`)."""
        port = self.master_port()
        return next(n for n in self.data if n.port == port)

    def replica(self) -> Node:
        port = self.master_port()
        return next(n for n in self.data if n.port != port)

    def master_port(self) -> int:
        addr = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(addr[1])

    def _sentinel_ports(self) -> set[int]:
        ports = set()
        for s in self.sentinels:
            if s.proc is None:
                continue
            addr = s.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            ports.add(int(addr[1]) if addr else 0)
        return ports

    def wait_agreed(self, timeout: float = 30.0) -> int:
        """Every sentinel names one master, which says it is one, knows its replica and 2 other sentinels,
        and the replica's link to it is up; the master's port."""
        def agreed() -> int | None:
            ports = self._sentinel_ports()
            if len(ports) != 1:
                return None
            port = ports.pop()
            for s in self.sentinels:
                state = s.client().sentinel_master(MASTER_NAME)
                if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                    return None
            master = next(n for n in self.data if n.port == port)
            if master.client().execute_command("ROLE")[0] != "master":
                return None
            return port if self._replica_linked(port) else None
        got: int = wait_for("sentinels agree on one master with its replica", agreed, timeout)
        return got

    def _replica_linked(self, master_port: int) -> bool:
        for node in self.data:
            if node.port == master_port or node.proc is None:
                continue
            info = node.client().info("replication")
            if info.get("master_port") != master_port or info.get("master_link_status") != "up":
                return False
        return True

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """The replica is linked to the master and has every write the master took so far."""
        master = self.data[0] if self.sentinels[0].proc is None else self.master()

        def caught_up() -> bool:
            offset = int(master.client().info("replication")["master_repl_offset"])
            return self._replica_linked(master.port) and all(
                int(n.client().info("replication").get("slave_repl_offset", -1)) >= offset
                for n in self.data if n is not master and n.proc is not None)
        wait_for("replica caught up", caught_up, timeout)

    # -- faults ----------------------------------------------------------------------------------------

    def failover(self, timeout: float = 30.0, whole: bool = True) -> int:
        """SENTINEL FAILOVER (the replica is promoted, the old master demoted and its clients dropped);
        waits until every sentinel names the other node, which says it is master, and with ``whole``
        until the old one is its replica (Sentinel converts it on its next INFO round: up to ~10 s);
        the new master's port."""
        old = self.master_port()
        self.sentinels[0].client().sentinel_failover(MASTER_NAME)
        new = self._new_master(old, timeout)
        return self.wait_agreed(timeout) if whole else new

    def _new_master(self, old: int, timeout: float) -> int:
        def named() -> int | None:
            ports = self._sentinel_ports()
            if len(ports) != 1 or old in ports or 0 in ports:
                return None
            port = ports.pop()
            node = next(n for n in self.data if n.port == port)
            return port if node.client().execute_command("ROLE")[0] == "master" else None
        got: int = wait_for("every sentinel names the new master", named, timeout)
        return got

    def kill_master(self, timeout: float = 60.0, restart: bool = True) -> int:
        """SIGKILL the master; the sentinels see it down (DOWN_AFTER_MS) and promote the replica. With
        ``restart`` the old master comes back (from its AOF) and the sentinels make it a replica of the new
        one; waits for that. The new master's port."""
        old = self.master()
        old.stop(signal.SIGKILL)
        new_port = self._new_master(old.port, timeout)
        if restart:
            self.restart(old, timeout)
        return new_port

    def restart(self, node: Node, timeout: float = 60.0) -> None:
        """Start a stopped data node again (from its AOF): the sentinels make it a replica of the master
        they name; waits until the site is whole."""
        node.start()
        wait_for("the old master rejoins as a replica", lambda: node.client().execute_command("ROLE")[0] == "slave",
                 timeout)
        self.wait_agreed(timeout)

    def stopped(self) -> list[Node]:
        return [n for n in self.data if n.proc is None]
