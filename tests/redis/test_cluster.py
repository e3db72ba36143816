"""A TLS Redis Cluster on real redis-servers, built and resized by topology and redisadmin.

Every server runs the rendered cluster configuration on 127.0.0.1 with its
own TLS port and bus port, and announces its pod's headless DNS name, as
``server_args`` makes it do in a pod (``$(POD_NAME)`` is filled in). A small
loop does what the reconcile does: read every pod's CLUSTER NODES, ask
``topology.next_step`` and run the step with ``redisadmin.apply_step`` as the
operator user over verified mutual TLS.

Clients check certificates against the announced names. Those names exist
in no DNS here, so ``PodDNSConnection`` connects them to 127.0.0.1, the only
part of redis-py's connection it replaces. Announcing ``localhost`` instead
would check nothing useful: redis-py 8 turns a ``localhost`` node into
127.0.0.1 and checks the certificate against that IP address.

The tests build on each other in file order and share one cluster; every
server is killed when the module ends, whatever the outcome.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from secureredis import material as material_module
from secureredis import names, redisadmin, spec, topology

from redis_harness import LOOPBACK, RedisServer, secure_redis_object, start_redis_server

pytestmark = pytest.mark.redis

SHARDS = 3
REPLICAS_PER_SHARD = 1
KEY_COUNT = 1000
# Steps take milliseconds, but gossip spreads every change within about a
# second, and a failover waits for the 5 s cluster-node-timeout.
CONVERGE_SECONDS = 60.0
FAILOVER_SECONDS = 30.0
# The handshake with a node that never answers properly is dropped after the
# node timeout (5 s in the rendered config); allow some margin on top.
HANDSHAKE_GIVE_UP_SECONDS = 9.0


class PodDNSConnection(redis.SSLConnection):
    """An SSLConnection that reaches every host name at 127.0.0.1, as a hosts file would.

    redis-py still sends the host name as SNI and, with ssl_check_hostname,
    checks the server certificate against it.
    """

    def _connect(self):
        sock = socket.create_connection((LOOPBACK, self.port),
                                        timeout=self.socket_connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.socket_timeout)
        try:
            return self._wrap_socket_with_ssl(sock)
        except BaseException:
            sock.close()
            raise


class Pods:
    """The servers of one SecureRedis in cluster mode and their operator clients, by pod ordinal."""

    def __init__(self, sr: spec.SecureRedis, new_directory: Callable[[], Path]):
        self.sr = sr
        self.new_directory = new_directory
        self.material = material_module.ensure(sr, None, now=datetime.now(timezone.utc))
        self.servers: dict[int, RedisServer] = {}
        self.clients: dict[int, redis.Redis] = {}
        self.dead: list[RedisServer] = []

    def hostname(self, ordinal: int) -> str:
        sr = self.sr
        return names.pod_dns_name(sr.name, sr.namespace, ordinal, sr.cluster_domain)

    def start(self, ordinal: int) -> RedisServer:
        """Start the server of pod ``ordinal`` with an empty data directory and new ports."""
        server = start_redis_server(self.sr, self.new_directory(), material=self.material,
                                    pod_name=f"{names.statefulset(self.sr.name)}-{ordinal}")
        self.servers[ordinal] = server
        operator = self.material.system["operator"]
        self.clients[ordinal] = redisadmin.connect(
            LOOPBACK, server.port, ca_pem=self.material.trusted_cas,
            cert_pem=operator.client_cert.cert_pem, key_pem=operator.client_cert.key_pem,
            username=operator.username, password=operator.password,
            server_hostname=self.hostname(ordinal))
        return server

    def kill(self, ordinal: int) -> None:
        """Kill pod ``ordinal``'s server, as when Kubernetes deletes the pod."""
        self.clients.pop(ordinal).close()
        server = self.servers.pop(ordinal)
        server.stop()
        self.dead.append(server)

    def stop_all(self) -> None:
        for ordinal in list(self.servers):
            self.kill(ordinal)

    def views(self) -> dict[int, topology.PodView]:
        return {ordinal: redisadmin.observe_pod(self.clients[ordinal], ordinal, LOOPBACK,
                                                server.port, server.bus_port)
                for ordinal, server in self.servers.items()}

    def converge(self, shards: int, timeout: float = CONVERGE_SECONDS) -> list[topology.Step]:
        """Run next_step and apply_step until nothing is left to do; return the steps run."""
        operator = self.material.system["operator"]
        applied: list[topology.Step] = []
        deadline = time.monotonic() + timeout
        while True:
            step = topology.next_step(shards, REPLICAS_PER_SHARD, self.views())
            if step is None:
                return applied
            if isinstance(step, topology.Blocked):
                pytest.fail(f"the cluster needs manual repair: {step.reason}")
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster did not settle within {timeout} s; next step: {step}")
            if isinstance(step, topology.Wait):
                time.sleep(0.1)
                continue
            redisadmin.apply_step(step, self.clients, username=operator.username,
                                  password=operator.password)
            applied.append(step)

    def health(self, ordinal: int, shards: int) -> topology.Health:
        client = self.clients[ordinal]
        return topology.assess_health(redisadmin.cluster_info(client),
                                      redisadmin.cluster_nodes(client), shards,
                                      REPLICAS_PER_SHARD)

    def wait_healthy(self, shards: int, timeout: float = CONVERGE_SECONDS) -> None:
        """Wait until every pod's own view of the cluster is healthy."""
        deadline = time.monotonic() + timeout
        while True:
            unhealthy = {ordinal: self.health(ordinal, shards) for ordinal in self.servers}
            unhealthy = {o: h for o, h in unhealthy.items() if not h.healthy}
            if not unhealthy:
                return
            if time.monotonic() > deadline:
                report = "; ".join(f"pod {o}: {h.message}" for o, h in unhealthy.items())
                pytest.fail(f"the cluster is not healthy after {timeout} s: {report}")
            time.sleep(0.2)

    def app_cluster(self, ordinal: int = 0, *, hostname: str | None = None) -> RedisCluster:
        """Open a RedisCluster as the least-privilege user app_service (``~app:*``)."""
        server = self.servers[ordinal]
        credential = self.material.users["app_service"]
        files = server.client_files["app_service"]
        return RedisCluster(
            startup_nodes=[ClusterNode(hostname or self.hostname(ordinal), server.port)],
            username=credential.username,
            password=credential.password,
            ssl=True,
            ssl_ca_certs=server.paths.ca_file,
            ssl_certfile=files.cert,
            ssl_keyfile=files.key,
            ssl_check_hostname=True,
            connection_class=PodDNSConnection,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
        )

    def primary_of_shard(self, shard: int) -> int:
        """Return the ordinal of the pod that holds the shard's slots now."""
        for ordinal in topology.shard_ordinals(shard, REPLICAS_PER_SHARD):
            if ordinal in self.servers:
                me = redisadmin.cluster_myself(self.clients[ordinal])
                if me.is_primary and me.slots:
                    return ordinal
        raise AssertionError(f"no running pod of shard {shard} holds slots")


@pytest.fixture(scope="module")
def pods(tmp_path_factory) -> Iterator[Pods]:
    sr = spec.load(secure_redis_object(
        mode="cluster", cluster={"shards": SHARDS, "replicasPerShard": REPLICAS_PER_SHARD}))
    cluster = Pods(sr, lambda: tmp_path_factory.mktemp("cluster-pod"))
    try:
        for ordinal in range(sr.pod_count):
            cluster.start(ordinal)
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture(scope="module")
def bootstrap_steps(pods) -> list[topology.Step]:
    return pods.converge(SHARDS)


@pytest.fixture(scope="module")
def app_keys(pods, bootstrap_steps) -> dict[str, str]:
    """Write KEY_COUNT keys as app_service and return them with their values."""
    keys = {f"app:{number}": f"value-{number}" for number in range(KEY_COUNT)}
    client = pods.app_cluster()
    try:
        for key, value in keys.items():
            client.set(key, value)
    finally:
        client.close()
    return keys


def read_all(pods: Pods, keys: dict[str, str], ordinal: int) -> dict[str, str | None]:
    client = pods.app_cluster(ordinal)
    try:
        return {key: client.get(key) for key in keys}
    finally:
        client.close()


def slot_owners(pods: Pods, ordinal: int) -> dict[int, tuple[topology.SlotRange, ...]]:
    """Return the slots each primary owns, by pod ordinal, as pod ``ordinal`` sees them."""
    by_id = {redisadmin.cluster_myself(client).id: o for o, client in pods.clients.items()}
    return {by_id[node.id]: node.slots
            for node in redisadmin.cluster_nodes(pods.clients[ordinal]) if node.slots}


def test_bootstrap_reaches_ok(pods, bootstrap_steps):
    kinds = [type(step).__name__ for step in bootstrap_steps]
    assert kinds.count("SetConfigEpoch") == 6
    assert kinds.count("AddSlots") == SHARDS
    assert kinds.count("Meet") == 5
    assert kinds.count("Replicate") == SHARDS * REPLICAS_PER_SHARD

    pods.wait_healthy(SHARDS)
    info = redisadmin.cluster_info(pods.clients[0])
    assert info["cluster_state"] == "ok"
    assert info["cluster_slots_assigned"] == "16384"
    assert info["cluster_slots_ok"] == "16384"
    assert info["cluster_known_nodes"] == "6"
    assert info["cluster_size"] == "3"


def test_bootstrap_follows_plan(pods, bootstrap_steps):
    owners = slot_owners(pods, 0)
    for plan in topology.plan_layout(SHARDS, REPLICAS_PER_SHARD):
        assert owners[plan.primary] == (plan.slots,)
        primary_id = redisadmin.cluster_myself(pods.clients[plan.primary]).id
        for replica in plan.replicas:
            me = redisadmin.cluster_myself(pods.clients[replica])
            assert me.is_replica
            assert me.primary_id == primary_id
        epoch = redisadmin.cluster_myself(pods.clients[plan.primary]).config_epoch
        assert epoch == plan.config_epoch


def test_bootstrap_again_does_nothing(pods, bootstrap_steps):
    assert topology.next_step(SHARDS, REPLICAS_PER_SHARD, pods.views()) is None


def test_nodes_announce_pod_names(pods, bootstrap_steps):
    nodes = redisadmin.cluster_nodes(pods.clients[0])
    by_port = {node.port: node.hostname for node in nodes}
    for ordinal, server in pods.servers.items():
        assert by_port[server.port] == pods.hostname(ordinal)


def test_app_writes_every_slot_range(pods, app_keys):
    slots = {key_slot(key.encode()) for key in app_keys}
    for plan in topology.plan_layout(SHARDS, REPLICAS_PER_SHARD):
        in_range = [slot for slot in slots if plan.slots.start <= slot <= plan.slots.end]
        assert len(in_range) > 100, f"few test keys in slots {plan.slots}"

    assert read_all(pods, app_keys, ordinal=2) == app_keys


def test_app_checks_announced_names(pods, app_keys):
    client = pods.app_cluster(4)
    try:
        connection_kwargs = client.get_node(pods.hostname(4), pods.servers[4].port) \
            .redis_connection.connection_pool.connection_kwargs
        assert connection_kwargs["ssl_check_hostname"] is True
        # Every primary is known by its announced name, which CLUSTER SLOTS returned.
        hosts = {node.host for node in client.get_primaries()}
        assert hosts == {pods.hostname(o) for o in (0, 2, 4)}
    finally:
        client.close()


def test_app_rejects_name_not_in_certificate(pods, app_keys):
    # RedisCluster reads CLUSTER SLOTS when it is created, so that fails.
    with pytest.raises(redis.exceptions.RedisClusterException, match="Hostname mismatch"):
        pods.app_cluster(0, hostname="cache-0.elsewhere.example")


def test_app_denied_outside_its_keys(pods, app_keys):
    client = pods.app_cluster()
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other:1", "x")
    finally:
        client.close()


def test_operator_cannot_read_keys(pods, app_keys):
    primary = pods.clients[pods.primary_of_shard(0)]
    key = next(key for key in app_keys if key_slot(key.encode()) < 100)
    # The operator user reaches keys only through MIGRATE and RESTORE-ASKING.
    with pytest.raises(redis.exceptions.NoPermissionError):
        primary.execute_command("GET", key)
    with pytest.raises(redis.exceptions.NoPermissionError):
        primary.execute_command("SET", key, "changed")
    with pytest.raises(redis.exceptions.NoPermissionError):
        primary.execute_command("DUMP", key)


def test_node_from_other_ca_stays_out(pods, bootstrap_steps, tmp_path_factory):
    # A second material.ensure makes a new CA, certificate and passwords.
    foreign_material = material_module.ensure(pods.sr, None, now=datetime.now(timezone.utc))
    foreign = start_redis_server(pods.sr, tmp_path_factory.mktemp("foreign"),
                                 material=foreign_material, pod_name="cache-9")
    try:
        operator = foreign_material.system["operator"]
        foreign_client = redisadmin.connect(
            LOOPBACK, foreign.port, ca_pem=foreign_material.trusted_cas,
            cert_pem=operator.client_cert.cert_pem, key_pem=operator.client_cert.key_pem,
            username=operator.username, password=operator.password,
            server_hostname=pods.hostname(9))
        foreign.clients.append(foreign_client)

        # The operator trusts only its own CA, so it does not even connect.
        with pytest.raises(redisadmin.RedisAdminError, match="failed verification"):
            pods_operator = pods.material.system["operator"]
            redisadmin.connect(
                LOOPBACK, foreign.port, ca_pem=pods.material.trusted_cas,
                cert_pem=pods_operator.client_cert.cert_pem,
                key_pem=pods_operator.client_cert.key_pem, server_hostname=pods.hostname(9))

        # Both directions: a member invites the node, and the node invites a member.
        redisadmin.meet(pods.clients[0], LOOPBACK, foreign.port, foreign.bus_port)
        member = pods.servers[2]
        redisadmin.meet(foreign_client, LOOPBACK, member.port, member.bus_port)

        deadline = time.monotonic() + HANDSHAKE_GIVE_UP_SECONDS
        while True:
            for ordinal, client in pods.clients.items():
                for node in redisadmin.cluster_nodes(client):
                    if node.port == foreign.port:
                        assert "handshake" in node.flags, f"pod {ordinal} accepted the node"
            foreign_nodes = redisadmin.cluster_nodes(foreign_client)
            assert all("handshake" in node.flags for node in foreign_nodes if not node.myself)
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)

        for ordinal, client in pods.clients.items():
            assert all(node.port != foreign.port for node in redisadmin.cluster_nodes(client))
            info = redisadmin.cluster_info(client)
            assert info["cluster_state"] == "ok"
            assert info["cluster_known_nodes"] == "6"
        assert len(redisadmin.cluster_nodes(foreign_client)) == 1
    finally:
        foreign.stop()


def test_scale_up_moves_slots_and_keeps_keys(pods, app_keys):
    for ordinal in topology.shard_ordinals(SHARDS, REPLICAS_PER_SHARD):
        pods.start(ordinal)
    steps = pods.converge(SHARDS + 1)

    moves = [step for step in steps if isinstance(step, topology.MoveSlots)]
    assert {move.target for move in moves} == {6}
    assert sum(len(r) for move in moves for r in move.slots) == 4096
    pods.wait_healthy(SHARDS + 1)
    counts = {o: sum(len(r) for r in ranges) for o, ranges in slot_owners(pods, 0).items()}
    assert counts == {0: 4096, 2: 4096, 4: 4096, 6: 4096}
    assert read_all(pods, app_keys, ordinal=6) == app_keys

    # Running the last move again changes nothing.
    operator = pods.material.system["operator"]
    redisadmin.apply_step(moves[-1], pods.clients, username=operator.username,
                          password=operator.password)
    assert topology.next_step(SHARDS + 1, REPLICAS_PER_SHARD, pods.views()) is None


def test_scale_down_keeps_keys(pods, app_keys):
    steps = pods.converge(SHARDS)

    kinds = [type(step).__name__ for step in steps]
    assert "MoveSlots" in kinds
    assert kinds.count("Forget") == 2
    assert kinds.count("Reset") == 2
    assert topology.required_pod_count(SHARDS, REPLICAS_PER_SHARD, pods.views()) == 6
    for ordinal in topology.shard_ordinals(SHARDS, REPLICAS_PER_SHARD):
        pods.kill(ordinal)

    pods.wait_healthy(SHARDS)
    owners = slot_owners(pods, 0)
    for plan in topology.plan_layout(SHARDS, REPLICAS_PER_SHARD):
        assert owners[plan.primary] == (plan.slots,)
    assert read_all(pods, app_keys, ordinal=0) == app_keys
    client = pods.app_cluster()
    try:
        assert client.dbsize(target_nodes=RedisCluster.PRIMARIES) == KEY_COUNT
    finally:
        client.close()


def test_half_done_move_is_finished(pods, app_keys):
    source, target = pods.clients[0], pods.clients[2]
    source_id = redisadmin.cluster_myself(source).id
    target_id = redisadmin.cluster_myself(target).id
    key = next(key for key in app_keys if key_slot(key.encode()) <= 5461)
    slot = key_slot(key.encode())
    # What a MoveSlots step leaves when the operator stops right after marking.
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)

    step = topology.next_step(SHARDS, REPLICAS_PER_SHARD, pods.views())
    assert isinstance(step, topology.MoveSlots)
    assert (step.source, step.target, step.slots) == (0, 2, (topology.SlotRange(slot, slot),))
    pods.converge(SHARDS)

    pods.wait_healthy(SHARDS)
    counts = {o: sum(len(r) for r in ranges) for o, ranges in slot_owners(pods, 0).items()}
    assert counts == dict(zip((0, 2, 4), topology.slot_counts(SHARDS)))
    assert read_all(pods, app_keys, ordinal=4) == app_keys


def test_primary_failure_promotes_replica(pods, app_keys):
    primary = pods.primary_of_shard(0)
    replica = next(o for o in topology.shard_ordinals(0, REPLICAS_PER_SHARD) if o != primary)
    # Every write has reached the replica before the primary goes.
    assert pods.clients[primary].execute_command("WAIT", 1, 5000) == 1
    pods.kill(primary)

    deadline = time.monotonic() + FAILOVER_SECONDS
    while not redisadmin.cluster_myself(pods.clients[replica]).is_primary:
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.2)
    deadline = time.monotonic() + FAILOVER_SECONDS
    for client in pods.clients.values():
        while redisadmin.cluster_info(client)["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster_state did not return to ok"
            time.sleep(0.2)
    assert read_all(pods, app_keys, ordinal=2) == app_keys


def test_rescheduled_pod_rejoins(pods, app_keys):
    # The killed primary comes back as a new node: an empty data directory
    # (no persistence) and a new address, like a pod on another Kubernetes node.
    dead = next(o for o in topology.shard_ordinals(0, REPLICAS_PER_SHARD)
                if o not in pods.servers)
    pods.start(dead)
    steps = pods.converge(SHARDS)

    kinds = [type(step).__name__ for step in steps]
    assert kinds == ["Meet", "Replicate", "Forget"]
    pods.wait_healthy(SHARDS)
    me = redisadmin.cluster_myself(pods.clients[dead])
    assert me.is_replica
    assert me.primary_id == redisadmin.cluster_myself(
        pods.clients[pods.primary_of_shard(0)]).id
    assert read_all(pods, app_keys, ordinal=dead) == app_keys


def test_primary_replaced_at_once_rejoins(pods, app_keys):
    # A StatefulSet starts the replacement pod seconds after the old one
    # stops, often before Redis has promoted the replica.
    primary = pods.primary_of_shard(1)
    assert pods.clients[primary].execute_command("WAIT", 1, 5000) == 1
    pods.kill(primary)
    pods.start(primary)

    pods.converge(SHARDS, timeout=CONVERGE_SECONDS + FAILOVER_SECONDS)

    pods.wait_healthy(SHARDS)
    assert redisadmin.cluster_myself(pods.clients[primary]).is_replica
    assert read_all(pods, app_keys, ordinal=primary) == app_keys
