"""The Redis Cluster planner on hand-built CLUSTER NODES views: layout, parsing, next step."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import pytest

from secureredis import topology
from secureredis.topology import (
    SLOT_COUNT, AddSlots, Blocked, ClusterNode, Forget, Meet, MoveSlots, PodView, Replicate,
    Reset, SetConfigEpoch, SlotRange, Wait,
)

# --- Builders -----------------------------------------------------------------


def node_id(ordinal: int) -> str:
    """Return a 40-character node id that shows the pod's ordinal."""
    return f"{ordinal:02d}".ljust(40, "a")


def address(ordinal: int) -> str:
    return f"10.0.0.{ordinal + 10}"


def entry(ordinal: int, *, primary: int | None = None, slots: Iterable[int] = (),
          epoch: int = 0, flags: Iterable[str] = (), myself: bool = False,
          migrating: dict[int, int] | None = None, importing: dict[int, int] | None = None,
          ip: str | None = None, identity: str | None = None) -> ClusterNode:
    """Build one CLUSTER NODES entry for pod ``ordinal``; ``primary`` makes it a replica."""
    role = "master" if primary is None else "slave"
    all_flags = {role, *flags} | ({"myself"} if myself else set())
    return ClusterNode(
        id=identity or node_id(ordinal),
        ip=address(ordinal) if ip is None else ip,
        port=6379,
        bus_port=16379,
        hostname=f"cache-{ordinal}.cache-headless.ns.svc.cluster.local",
        flags=frozenset(all_flags),
        primary_id=None if primary is None else node_id(primary),
        config_epoch=epoch,
        link_state="connected",
        slots=topology.to_ranges(slots),
        migrating={slot: node_id(o) for slot, o in (migrating or {}).items()},
        importing={slot: node_id(o) for slot, o in (importing or {}).items()},
    )


def pod(ordinal: int, entries: Iterable[ClusterNode]) -> PodView:
    return PodView(ordinal, address(ordinal), 6379, 16379, tuple(entries))


def fresh(count: int, epochs: bool = False) -> dict[int, PodView]:
    """Return pods that each know only themselves, with or without their first epoch."""
    return {o: pod(o, [entry(o, myself=True, epoch=o + 1 if epochs else 0)])
            for o in range(count)}


def mesh(states: dict[int, dict[str, Any]]) -> dict[int, PodView]:
    """Return pods that all know each other; ``states`` gives each node's entry options."""
    return {o: pod(o, [entry(other, myself=other == o, **options)
                       for other, options in states.items()])
            for o in states}


def bootstrapped(shards: int = 3, replicas_per_shard: int = 1) -> dict[int, dict[str, Any]]:
    """Return node states of a finished bootstrap: planned slots, replicas attached."""
    states: dict[int, dict[str, Any]] = {}
    for plan in topology.plan_layout(shards, replicas_per_shard):
        states[plan.primary] = {"slots": plan.slots.slots(), "epoch": plan.config_epoch}
        for replica in plan.replicas:
            states[replica] = {"primary": plan.primary, "epoch": replica + 1}
    return states


def with_changes(states: dict[int, dict[str, Any]],
                 **changes: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Copy ``states`` with options replaced for pods given as ``pod3={...}``."""
    result = {o: dict(options) for o, options in states.items()}
    for name, options in changes.items():
        result.setdefault(int(name.removeprefix("pod")), {}).update(options)
    return result


def drop_entry(pods: dict[int, PodView], viewer: int, ordinal: int) -> dict[int, PodView]:
    """Remove pod ``ordinal`` from pod ``viewer``'s node table."""
    view = pods[viewer]
    kept = [node for node in view.nodes if node.id != node_id(ordinal)]
    return {**pods, viewer: PodView(view.ordinal, view.address, view.port, view.bus_port,
                                    tuple(kept))}


def add_entry(pods: dict[int, PodView], viewers: Iterable[int],
              extra: ClusterNode) -> dict[int, PodView]:
    """Add ``extra`` to the node tables of ``viewers``."""
    result = dict(pods)
    for viewer in viewers:
        view = result[viewer]
        result[viewer] = PodView(view.ordinal, view.address, view.port, view.bus_port,
                                 view.nodes + (extra,))
    return result


# --- Slots and layout ---------------------------------------------------------------

@pytest.mark.parametrize("shards", [1, 3, 4, 5, 7, 100])
def test_slot_ranges_cover_all_slots(shards):
    ranges = topology.slot_ranges(shards)
    counts = [len(r) for r in ranges]

    assert len(ranges) == shards
    assert ranges[0].start == 0
    assert ranges[-1].end == SLOT_COUNT - 1
    assert all(a.end + 1 == b.start for a, b in zip(ranges, ranges[1:]))
    assert sum(counts) == SLOT_COUNT
    assert max(counts) - min(counts) <= 1
    assert counts == sorted(counts, reverse=True)


def test_slot_ranges_three_shards():
    assert topology.slot_ranges(3) == [SlotRange(0, 5461), SlotRange(5462, 10922),
                                       SlotRange(10923, 16383)]


@pytest.mark.parametrize("start, end", [(-1, 5), (5, 4), (0, SLOT_COUNT)])
def test_slot_range_rejects_invalid(start, end):
    with pytest.raises(ValueError, match="invalid slot range"):
        SlotRange(start, end)


@pytest.mark.parametrize("slots, ranges", [
    ([], ()),
    ([7], (SlotRange(7, 7),)),
    ([3, 1, 2, 2, 9, 10], (SlotRange(1, 3), SlotRange(9, 10))),
    (range(SLOT_COUNT), (SlotRange(0, SLOT_COUNT - 1),)),
])
def test_to_ranges_collapses_slots(slots, ranges):
    assert topology.to_ranges(slots) == ranges
    assert topology.to_slots(ranges) == set(slots)


def test_format_ranges():
    assert topology.format_ranges([SlotRange(0, 5), SlotRange(9, 9)]) == "0-5,9"
    assert topology.format_ranges([]) == "none"


@pytest.mark.parametrize("shards, replicas_per_shard, primaries, replicas", [
    (3, 1, (0, 2, 4), ((1,), (3,), (5,))),
    (3, 0, (0, 1, 2), ((), (), ())),
    (3, 2, (0, 3, 6), ((1, 2), (4, 5), (7, 8))),
    (4, 1, (0, 2, 4, 6), ((1,), (3,), (5,), (7,))),
])
def test_plan_layout_is_shard_major(shards, replicas_per_shard, primaries, replicas):
    plans = topology.plan_layout(shards, replicas_per_shard)

    assert tuple(plan.primary for plan in plans) == primaries
    assert tuple(plan.replicas for plan in plans) == replicas
    assert tuple(plan.slots for plan in plans) == tuple(topology.slot_ranges(shards))
    assert [plan.config_epoch for plan in plans] == [p + 1 for p in primaries]
    for plan in plans:
        for ordinal in plan.ordinals:
            assert topology.shard_of(ordinal, replicas_per_shard) == plan.index


def test_adding_shard_keeps_existing_pods():
    three = topology.plan_layout(3, 1)
    four = topology.plan_layout(4, 1)

    assert [plan.ordinals for plan in four[:3]] == [plan.ordinals for plan in three]
    assert four[3].ordinals == (6, 7)


# --- Rebalancing -----------------------------------------------------------------

def balanced(shards: int) -> dict[int, set[int]]:
    return {index: set(r.slots()) for index, r in enumerate(topology.slot_ranges(shards))}


def apply_moves(owned: dict[int, set[int]], moves: list[topology.SlotMove]) -> dict[int, set[int]]:
    result = {shard: set(slots) for shard, slots in owned.items()}
    for move in moves:
        slots = topology.to_slots(move.slots)
        assert slots <= result[move.source], "a move gives slots its source does not own"
        result[move.source] -= slots
        result.setdefault(move.target, set()).update(slots)
    return result


@pytest.mark.parametrize("before, after", [(3, 4), (3, 5), (4, 3), (5, 3), (3, 10), (10, 3)])
def test_rebalance_balances(before, after):
    moves = topology.plan_rebalance(balanced(before), after)
    result = apply_moves(balanced(before), moves)

    counts = {shard: len(slots) for shard, slots in result.items() if slots}
    assert counts == dict(enumerate(topology.slot_counts(after)))
    moved = sum(move.count for move in moves)
    kept = sum(min(len(balanced(before).get(s, ())), len(result.get(s, ())))
               for s in range(max(before, after)))
    assert moved == SLOT_COUNT - kept, "a slot moved more than needed"


def test_rebalance_up_then_down_restores_ranges():
    up = apply_moves(balanced(3), topology.plan_rebalance(balanced(3), 4))
    down = apply_moves(up, topology.plan_rebalance(up, 3))

    assert {shard: slots for shard, slots in down.items() if slots} == balanced(3)


def test_rebalance_donors_give_lowest_slots():
    moves = topology.plan_rebalance(balanced(3), 4)

    assert [(m.source, m.target, m.slots) for m in moves] == [
        (0, 3, (SlotRange(0, 1365),)),
        (1, 3, (SlotRange(5462, 6826),)),
        (2, 3, (SlotRange(10923, 12287),)),
    ]


def test_rebalance_balanced_moves_nothing():
    assert topology.plan_rebalance(balanced(3), 3) == []


# --- CLUSTER NODES --------------------------------------------------------------

NODES_7_0 = """\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,cache-3.h.ns.svc slave \
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,cache-1.h.ns.svc master - 0 \
1426238316232 2 connected 5461-10922 [5460-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001,cache-0.h.ns.svc myself,master \
- 0 0 1 connected 0-5460 [5460->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] 16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 handshake - 1426238316232 0 0 \
disconnected
"""


def test_parse_cluster_nodes_7_0():
    replica, importer, me, handshake = topology.parse_cluster_nodes(NODES_7_0)

    assert replica.is_replica
    assert replica.primary_id == me.id
    assert replica.hostname == "cache-3.h.ns.svc"
    assert (replica.ip, replica.port, replica.bus_port) == ("127.0.0.1", 30004, 31004)
    assert importer.importing == {5460: me.id}
    assert importer.slots == (SlotRange(5461, 10922),)
    assert me.myself
    assert me.is_primary
    assert me.config_epoch == 1
    assert me.slots == (SlotRange(0, 5460), SlotRange(16383, 16383))
    assert me.migrating == {5460: importer.id}
    assert me.slot_count == 5462
    assert handshake.hostname == ""
    assert not handshake.usable
    assert handshake.link_state == "disconnected"


@pytest.mark.parametrize("address, ip, port, bus_port, hostname", [
    ("10.1.2.3:6379@16379,cache-0.h,shard-id=abc,tls-port=0", "10.1.2.3", 6379, 16379,
     "cache-0.h"),
    ("10.1.2.3:6379@16379,,shard-id=abc", "10.1.2.3", 6379, 16379, ""),
    ("10.1.2.3:6379@16379,", "10.1.2.3", 6379, 16379, ""),
    (":6379@16379", "", 6379, 16379, ""),
    ("fd00::5:6379@16379,cache-2.h", "fd00::5", 6379, 16379, "cache-2.h"),
])
def test_parse_cluster_nodes_addresses(address, ip, port, bus_port, hostname):
    line = f"{'a' * 40} {address} myself,master - 0 0 0 connected"

    (node,) = topology.parse_cluster_nodes(line)

    assert (node.ip, node.port, node.bus_port, node.hostname) == (ip, port, bus_port, hostname)


@pytest.mark.parametrize("flags, usable, failed", [
    ("master", True, False),
    ("master,fail?", False, False),
    ("master,fail", False, True),
    ("slave,noaddr", False, False),
    ("master,nofailover", True, False),
])
def test_node_flags(flags, usable, failed):
    (node,) = topology.parse_cluster_nodes(f"{'b' * 40} 10.0.0.1:6379@16379 {flags} - 0 0 0 "
                                           "connected")

    assert node.usable is usable
    assert node.failed is failed


@pytest.mark.parametrize("line", [
    "abc 10.0.0.1:6379@16379 master -",
    f"{'a' * 40} 10.0.0.1:x@16379 master - 0 0 0 connected",
    f"{'a' * 40} 10.0.0.1:6379@16379 master - 0 0 zero connected",
    f"{'a' * 40} 10.0.0.1:6379@16379 master - 0 0 0 connected 5-x",
    f"{'a' * 40} 10.0.0.1:6379@16379 master - 0 0 0 connected 9-3",
    f"{'a' * 40} 10.0.0.1:6379@16379 master - 0 0 0 connected [5-?-bbb]",
])
def test_parse_cluster_nodes_rejects_malformed(line):
    with pytest.raises(ValueError, match="CLUSTER NODES"):
        topology.parse_cluster_nodes(line)


# --- Next step -----------------------------------------------------------------

def meet(sender: int, target: int) -> Meet:
    return Meet(sender, target, address(target), 6379, 16379)


def bootstrap_halfway() -> dict[int, PodView]:
    """Pods 0 and 2 took their slots, and pod 4 has its epoch but no slots. No pod met another."""
    pods = fresh(6, epochs=True)
    for plan in topology.plan_layout(3, 1)[:2]:
        pods[plan.primary] = pod(plan.primary, [entry(plan.primary, myself=True,
                                                      epoch=plan.config_epoch,
                                                      slots=plan.slots.slots())])
    return pods


def unmet() -> dict[int, PodView]:
    """Slots assigned to pods 0, 2 and 4, but no pod met another."""
    states = bootstrapped()
    return {o: pod(o, [entry(o, myself=True, **{k: v for k, v in states[o].items()
                                                  if k != "primary"})])
            for o in states}


def seed_knows_all() -> dict[int, PodView]:
    """Pod 0 met everybody; pod 3 has not heard of pod 5 yet."""
    states = {o: {k: v for k, v in s.items() if k != "primary"} for o, s in bootstrapped().items()}
    return drop_entry(mesh(states), 3, 5)


def moved_pod1() -> dict[int, PodView]:
    """Pod 1 came back with a new IP; the others still have the old one and see it failing."""
    states = bootstrapped()
    pods = mesh(with_changes(states, pod1={"ip": "10.9.9.9", "flags": ("fail?",)}))
    # Pod 1's own view shows its new address.
    return pods


def handshaking() -> dict[int, PodView]:
    pods = unmet()
    pods[0] = pod(0, [*pods[0].nodes,
                      entry(1, identity="f" * 40, flags=("handshake",), slots=())])
    return pods


def not_replicating() -> dict[int, PodView]:
    states = {o: {k: v for k, v in s.items() if k != "primary"} for o, s in bootstrapped().items()}
    return mesh(states)


def replica_of_replaced_primary(flags: tuple[str, ...]) -> Callable[[], dict[int, PodView]]:
    """Pod 0 (primary of slots 0-5461) was replaced by a new, empty node.

    Everybody met the new node, but pod 1 still replicates the old one, which
    the others see with ``flags``: empty when the replacement started before
    cluster-node-timeout passed. Until Redis promotes pod 1, pointing it at
    the new pod 0 would drop the only copy of the shard's keys.
    """
    def build() -> dict[int, PodView]:
        states = with_changes(bootstrapped(),
                              pod0={"identity": "e" * 40, "slots": (), "epoch": 0})
        old_zero = entry(0, slots=range(0, 5462), epoch=1, flags=flags)
        return add_entry(mesh(states), range(6), old_zero)
    return build


def promotion_not_seen() -> dict[int, PodView]:
    """Pod 1 took over shard 0 from a replaced pod 0, but pod 0 still lists it as a replica."""
    states = with_changes(bootstrapped(), pod0={"identity": "e" * 40, "slots": (), "epoch": 0},
                          pod1={"primary": None, "slots": range(0, 5462), "epoch": 7})
    pods = mesh(states)
    stale = [entry(1, primary=0) if node.id == node_id(1) else node for node in pods[0].nodes]
    return {**pods, 0: pod(0, stale)}


def shard_without_primary() -> dict[int, PodView]:
    """Both pods of shard 0 replicate pod 2, which took over all of shard 0's slots."""
    states = bootstrapped()
    states[2]["slots"] = list(range(0, 10923))
    states[0] = {"primary": 2}
    states[1] = {"primary": 2}
    return mesh(states)


def two_owners_in_shard() -> dict[int, PodView]:
    states = bootstrapped()
    states[0]["slots"] = range(0, 3000)
    states[1] = {"slots": range(3000, 5462)}
    return mesh(states)


def half_moved() -> dict[int, PodView]:
    states = bootstrapped()
    states[0]["migrating"] = {100: 2, 101: 2}
    states[2]["importing"] = {100: 0, 101: 0}
    return mesh(states)


def half_moved_to_vanished_node() -> dict[int, PodView]:
    states = bootstrapped()
    states[0]["migrating"] = {100: 9}
    return mesh(states)


def scaled_up() -> dict[int, PodView]:
    """Pods 6 and 7 joined and replicate; shard 3 owns nothing yet."""
    states = bootstrapped()
    states[6] = {"epoch": 7}
    states[7] = {"primary": 6}
    return mesh(states)


def scaled_up_no_replica() -> dict[int, PodView]:
    states = bootstrapped()
    states[6] = {}
    states[7] = {}
    return mesh(states)


def four_shards() -> dict[int, dict[str, Any]]:
    owned = {shard: set(r.slots()) for shard, r in enumerate(topology.slot_ranges(3))}
    owned = apply_moves(owned, topology.plan_rebalance(owned, 4))
    states = bootstrapped(4)
    for shard, slots in owned.items():
        states[shard * 2]["slots"] = sorted(slots)
    return states


def scaling_down() -> dict[int, PodView]:
    return mesh(four_shards())


def drained() -> dict[int, PodView]:
    """Shard 3's slots went back; Redis made pods 6 and 7 replicas of pod 4."""
    states = bootstrapped()
    states[6] = {"primary": 4}
    states[7] = {"primary": 4}
    return mesh(states)


def drained_stale_view() -> dict[int, PodView]:
    """Like drained, but pod 1 has not heard that pod 6 gave its last slots away."""
    pods = drained()
    view = pods[1]
    nodes = tuple(entry(6, slots=range(10923, 12288)) if node.id == node_id(6) else node
                  for node in view.nodes)
    pods[1] = PodView(1, view.address, view.port, view.bus_port, nodes)
    return pods


def forgotten() -> dict[int, PodView]:
    """The members forgot pods 6 and 7, which still know everyone."""
    pods = drained()
    for member in range(6):
        pods = drop_entry(drop_entry(pods, member, 6), member, 7)
    return pods


def released() -> dict[int, PodView]:
    pods = forgotten()
    pods[6] = pod(6, [entry(6, myself=True, identity="c" * 40)])
    pods[7] = pod(7, [entry(7, myself=True, identity="d" * 40)])
    return pods


def ghost(failed: bool) -> Callable[[], dict[int, PodView]]:
    def build() -> dict[int, PodView]:
        flags = ("fail",) if failed else ("fail?",)
        vanished = entry(9, identity="9" * 40, primary=0, flags=flags)
        return add_entry(mesh(bootstrapped()), range(6), vanished)
    return build


def orphaned_slots() -> dict[int, PodView]:
    """Pod 4 owns nothing; a vanished node owns shard 2's slots and nobody replicates it."""
    states = bootstrapped()
    states[4] = {}
    states[5] = {"primary": 4}
    vanished = entry(9, identity="9" * 40, slots=range(10923, SLOT_COUNT), flags=("fail",))
    return add_entry(mesh(states), range(6), vanished)


def missing_pod() -> dict[int, PodView]:
    pods = mesh(bootstrapped())
    pods[3] = PodView(3, address(3), 6379, 16379, None)
    del pods[5]
    return pods


NEXT_STEPS: dict[str, tuple[Callable[[], dict[int, PodView]], int, Any]] = {
    "fresh": (lambda: fresh(6), 3, SetConfigEpoch(0, 1)),
    "fresh-epoch-of-replica": (lambda: {**fresh(6, epochs=True), 3: fresh(6)[3]}, 3,
                               SetConfigEpoch(3, 4)),
    "epochs-set": (lambda: fresh(6, epochs=True), 3, AddSlots(0, (SlotRange(0, 5461),))),
    "bootstrap-halfway": (bootstrap_halfway, 3, AddSlots(4, (SlotRange(10923, 16383),))),
    "unmet": (unmet, 3, meet(0, 1)),
    "handshake": (handshaking, 3, Wait("pod 0 is in a handshake with pod 1")),
    "gossip-pending": (seed_knows_all, 3, Wait("pod 3 does not know pod 5 yet")),
    "address-changed": (moved_pod1, 3, meet(0, 1)),
    "not-replicating": (not_replicating, 3, Replicate(1, 0, node_id(0))),
    "replica-of-failed-primary": (replica_of_replaced_primary(("fail",)), 3, Wait(
        f"pod 1 replicates node {node_id(0)}, which owns slots 0-5461 and is failing; "
        "waiting for Redis to promote a replica")),
    "replica-of-replaced-primary": (replica_of_replaced_primary(()), 3, Wait(
        f"pod 1 replicates node {node_id(0)}, which owns slots 0-5461 and runs in no "
        "responding pod; waiting for Redis to promote a replica")),
    "promotion-not-seen": (promotion_not_seen, 3,
                           Wait("pod 0 does not see pod 1 as a primary yet")),
    "promoted-replica-followed": (lambda: mesh(with_changes(
        bootstrapped(), pod0={"identity": "e" * 40, "slots": (), "epoch": 0},
        pod1={"primary": None, "slots": range(0, 5462), "epoch": 7})), 3,
        Replicate(0, 1, node_id(1))),
    "shard-without-primary": (shard_without_primary, 3, Reset(0, "shard 0 has no primary")),
    "two-owners-in-shard": (two_owners_in_shard, 3, Blocked(
        "pods 0, 1 of shard 0 are all primaries holding slots; move the slots of all but "
        "one away")),
    "half-moved": (half_moved, 3, MoveSlots(0, 2, node_id(0), node_id(2), address(2), 6379,
                                            (SlotRange(100, 101),))),
    "half-moved-to-vanished": (half_moved_to_vanished_node, 3, Blocked(
        f"slots 100 are half moved between nodes {node_id(0)} and {node_id(9)}, but no running "
        f"pod is node {node_id(9)}; finish or cancel the move with CLUSTER SETSLOT")),
    "scaled-up-no-replica": (scaled_up_no_replica, 4, Replicate(7, 6, node_id(6))),
    "scaled-up": (scaled_up, 4, MoveSlots(0, 6, node_id(0), node_id(6), address(6), 6379,
                                          (SlotRange(0, 1023),))),
    "scaling-down": (scaling_down, 3, MoveSlots(6, 0, node_id(6), node_id(0), address(0), 6379,
                                                (SlotRange(0, 1023),))),
    "drained-stale-view": (drained_stale_view, 3, Wait(
        f"pods 1 still see node {node_id(6)} as an owner of slots; waiting for gossip")),
    "drained": (drained, 3, Forget(node_id(6), (0, 1, 2, 3, 4, 5), "pod 6 is leaving")),
    "forgotten": (forgotten, 3, Reset(6, "it is leaving the cluster")),
    "released": (released, 3, None),
    "done": (lambda: mesh(bootstrapped()), 3, None),
    "done-four-shards": (lambda: mesh(four_shards()), 4, None),
    "failed-ghost": (ghost(True), 3, Forget("9" * 40, (0, 1, 2, 3, 4, 5),
                                            "failed and no pod runs it any more")),
    "suspected-ghost": (ghost(False), 3, Wait(
        f"nodes {'9' * 40} run in no pod but are not marked failed yet")),
    "orphaned-slots": (orphaned_slots, 3, Blocked(
        "slots 10923-16383 belong to nodes that no responding pod runs; bring those pods "
        "back, or reassign the slots by hand")),
    "missing-pod": (missing_pod, 3, Wait("pods 3, 5 are not running or do not respond")),
}


@pytest.mark.parametrize("build, shards, expected", NEXT_STEPS.values(), ids=NEXT_STEPS.keys())
def test_next_step(build, shards, expected):
    assert topology.next_step(shards, 1, build(), max_slots_per_move=1024) == expected


def test_next_step_limits_move_size():
    step = topology.next_step(4, 1, scaled_up(), max_slots_per_move=10)

    assert step.slots == (SlotRange(0, 9),)


def test_next_step_moves_whole_shard_share():
    step = topology.next_step(4, 1, scaled_up(), max_slots_per_move=SLOT_COUNT)

    assert step.slots == (SlotRange(0, 1365),)


@pytest.mark.parametrize("step, text", [
    (SetConfigEpoch(0, 1), "set config epoch 1 on pod 0"),
    (AddSlots(2, (SlotRange(0, 9), SlotRange(20, 20))), "assign slots 0-9,20 to pod 2"),
    (meet(0, 3), "introduce pod 3 (10.0.0.13:6379, bus 16379) to pod 0"),
    (MoveSlots(0, 6, "a", "b", "10.0.0.16", 6379, (SlotRange(0, 9),)),
     "move 10 slots (0-9) from pod 0 to pod 6"),
    (Forget("x", (0, 1), "pod 6 is leaving"), "forget node x (pod 6 is leaving) on pods 0, 1"),
    (Wait("gossip"), "wait: gossip"),
    (Blocked("data"), "blocked: data"),
])
def test_step_descriptions(step, text):
    assert str(step) == text


# --- Scale-down and health ------------------------------------------------------

@pytest.mark.parametrize("build, expected", [
    (drained, 8),
    (forgotten, 8),
    (released, 6),
    (lambda: {**released(), 7: PodView(7, address(7), 6379, 16379, None)}, 8),
    (lambda: mesh(bootstrapped()), 6),
])
def test_required_pod_count(build, expected):
    assert topology.required_pod_count(3, 1, build()) == expected


HEALTHY_INFO = {"cluster_state": "ok", "cluster_slots_assigned": "16384",
                "cluster_slots_ok": "16384"}


def nodes_of(pods: dict[int, PodView], viewer: int = 0) -> tuple[ClusterNode, ...]:
    return pods[viewer].nodes


@pytest.mark.parametrize("info, nodes, reason", [
    (HEALTHY_INFO, lambda: nodes_of(mesh(bootstrapped())), "ClusterOK"),
    ({**HEALTHY_INFO, "cluster_state": "fail"}, lambda: nodes_of(mesh(bootstrapped())),
     "ClusterStateFail"),
    ({**HEALTHY_INFO, "cluster_slots_ok": "10000"}, lambda: nodes_of(mesh(bootstrapped())),
     "SlotsNotCovered"),
    (HEALTHY_INFO, lambda: nodes_of(drained()), "NodeCountMismatch"),
    (HEALTHY_INFO, lambda: nodes_of(handshaking()) + nodes_of(mesh(bootstrapped()))[1:],
     "ClusterOK"),
    (HEALTHY_INFO, lambda: nodes_of(mesh(with_changes(bootstrapped(),
                                                      pod1={"flags": ("fail",)}))),
     "ReplicasMissing"),
    (HEALTHY_INFO, lambda: nodes_of(shard_without_primary()), "ShardCountMismatch"),
])
def test_assess_health(info, nodes, reason):
    health = topology.assess_health(info, nodes(), 3, 1)

    assert health.reason == reason
    assert health.healthy is (reason == "ClusterOK")
