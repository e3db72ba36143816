"""Redis Cluster topology: the planned layout, CLUSTER NODES parsing and the next step.

Everything here is pure. The caller reads ``CLUSTER NODES`` from every pod,
calls ``next_step``, has redisadmin run the one step it returns and then
reads the pods again. Each decision depends only on what the servers report
at that moment, so a bootstrap, a resharding or a scale-down that stops
halfway (operator restart, lost connection) resumes where it stopped.

Layout: shards are laid out shard-major over the StatefulSet's ordinals.
Shard ``k`` owns the ``1 + replicas_per_shard`` consecutive ordinals that
start at ``k * (1 + replicas_per_shard)``, and the first of them starts as
the shard's primary. With 3 shards and 1 replica each, pods 0, 2 and 4 start
as primaries and pods 1, 3 and 5 replicate them. Adding a shard appends
pods, and removing one deletes the highest ordinals, which is the only
order a StatefulSet scales in. Roles are only the starting point: after a
failover the shard's primary is whichever of its pods Redis promoted.

Slots are split into contiguous, equal ranges (the first shards get one
more slot when 16384 does not divide evenly). Before the first MEET every
pod gets the config epoch ``ordinal + 1``. Distinct epochs spare Redis its
collision handling, which otherwise bumps the epochs of masters that share
one, including the empty masters that are about to become replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

SLOT_COUNT = 16384
# The maximum number of slots one MoveSlots step carries. Each slot costs a few round
# trips plus the transfer of its keys, so a step ends in seconds on a small
# data set and the reconcile loop gets to observe the cluster in between.
DEFAULT_MAX_SLOTS_PER_MOVE = 1024


# --- Slots -----------------------------------------------------------------

@dataclass(frozen=True, order=True)
class SlotRange:
    """The hash slots ``start`` to ``end``, both included."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end < SLOT_COUNT:
            raise ValueError(f"invalid slot range {self.start}-{self.end}; slots are "
                             f"0-{SLOT_COUNT - 1} and the start must not exceed the end")

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"

    def slots(self) -> range:
        return range(self.start, self.end + 1)


def to_ranges(slots: Iterable[int]) -> tuple[SlotRange, ...]:
    """Collapse slot numbers into the fewest sorted ranges."""
    ranges: list[SlotRange] = []
    start = previous = None
    for slot in sorted(set(slots)):
        if previous is not None and slot == previous + 1:
            previous = slot
            continue
        if start is not None:
            ranges.append(SlotRange(start, previous))
        start = previous = slot
    if start is not None:
        ranges.append(SlotRange(start, previous))
    return tuple(ranges)


def to_slots(ranges: Iterable[SlotRange]) -> set[int]:
    """Expand ranges into the set of their slot numbers."""
    return {slot for slot_range in ranges for slot in slot_range.slots()}


def format_ranges(ranges: Iterable[SlotRange]) -> str:
    """Render ranges for messages, as in ``0-5461,9000``."""
    return ",".join(str(slot_range) for slot_range in ranges) or "none"


def slot_counts(shards: int) -> list[int]:
    """Return how many slots each shard owns when the slots are balanced."""
    if shards < 1:
        raise ValueError(f"a cluster needs at least 1 shard, not {shards}")
    base, extra = divmod(SLOT_COUNT, shards)
    return [base + 1 if index < extra else base for index in range(shards)]


def slot_ranges(shards: int) -> list[SlotRange]:
    """Split the slots into one contiguous, balanced range per shard."""
    ranges = []
    start = 0
    for count in slot_counts(shards):
        ranges.append(SlotRange(start, start + count - 1))
        start += count
    return ranges


# --- Planned layout -------------------------------------------------------

@dataclass(frozen=True)
class ShardPlan:
    """The pods of one shard as first bootstrapped, its slots and its config epoch."""

    index: int
    primary: int
    replicas: tuple[int, ...]
    slots: SlotRange
    config_epoch: int

    @property
    def ordinals(self) -> tuple[int, ...]:
        return (self.primary, *self.replicas)


def pods_per_shard(replicas_per_shard: int) -> int:
    if replicas_per_shard < 0:
        raise ValueError(f"replicas per shard must be 0 or more, not {replicas_per_shard}")
    return 1 + replicas_per_shard


def shard_of(ordinal: int, replicas_per_shard: int) -> int:
    """Return the shard that the pod with ``ordinal`` belongs to."""
    return ordinal // pods_per_shard(replicas_per_shard)


def shard_ordinals(shard: int, replicas_per_shard: int) -> range:
    """Return the ordinals of the pods of ``shard``; the first one starts as its primary."""
    size = pods_per_shard(replicas_per_shard)
    return range(shard * size, (shard + 1) * size)


def initial_config_epoch(ordinal: int) -> int:
    """Return the config epoch a pod gets before it first meets the others."""
    return ordinal + 1


def plan_layout(shards: int, replicas_per_shard: int) -> tuple[ShardPlan, ...]:
    """Return the planned shards: primary and replica ordinals, slot range, config epoch."""
    plans = []
    for index, slot_range in enumerate(slot_ranges(shards)):
        ordinals = shard_ordinals(index, replicas_per_shard)
        plans.append(ShardPlan(index=index, primary=ordinals[0], replicas=tuple(ordinals[1:]),
                               slots=slot_range,
                               config_epoch=initial_config_epoch(ordinals[0])))
    return tuple(plans)


@dataclass(frozen=True)
class SlotMove:
    """Slots that move from shard ``source`` to shard ``target``."""

    source: int
    target: int
    slots: tuple[SlotRange, ...]

    @property
    def count(self) -> int:
        return sum(len(slot_range) for slot_range in self.slots)


def plan_rebalance(owned: Mapping[int, Iterable[int]], shards: int) -> list[SlotMove]:
    """Return the moves that leave shards ``0..shards-1`` with balanced slots.

    ``owned`` maps each shard to the slots it owns now. Shards numbered
    ``shards`` or higher are being removed and give away every slot.
    Receivers are filled in shard order, each from the donors in shard
    order, and a donor gives its lowest slots first. That moves no slot
    twice, and a scale-up followed by the matching scale-down returns every
    slot to the shard it started in.
    """
    targets = slot_counts(shards)
    remaining = {shard: sorted(set(slots)) for shard, slots in owned.items()}
    surplus = {}
    for shard, slots in sorted(remaining.items()):
        wanted = targets[shard] if shard < shards else 0
        if len(slots) > wanted:
            surplus[shard] = len(slots) - wanted

    moves: list[SlotMove] = []
    for receiver in range(shards):
        missing = targets[receiver] - len(remaining.get(receiver, ()))
        for donor in sorted(surplus):
            if missing <= 0:
                break
            count = min(missing, surplus[donor])
            if count <= 0:
                continue
            given, remaining[donor] = remaining[donor][:count], remaining[donor][count:]
            surplus[donor] -= count
            missing -= count
            moves.append(SlotMove(source=donor, target=receiver, slots=to_ranges(given)))
    return moves


# --- CLUSTER NODES --------------------------------------------------------

@dataclass(frozen=True)
class ClusterNode:
    """One line of ``CLUSTER NODES``: a node as the server that returned the table sees it.

    ``primary_id`` is the node a replica follows, None for primaries.
    ``migrating`` maps a slot to the node it is moving to and ``importing``
    a slot to the node it comes from; only the answering server's own line
    carries them.
    """

    id: str
    ip: str
    port: int
    bus_port: int
    hostname: str
    flags: frozenset[str]
    primary_id: str | None
    config_epoch: int
    link_state: str
    slots: tuple[SlotRange, ...] = ()
    migrating: Mapping[int, str] = field(default_factory=dict)
    importing: Mapping[int, str] = field(default_factory=dict)

    @property
    def myself(self) -> bool:
        return "myself" in self.flags

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def failed(self) -> bool:
        """True when the cluster agreed that the node failed (flag ``fail``)."""
        return "fail" in self.flags

    @property
    def usable(self) -> bool:
        """True when the node is fully known and not suspected or agreed to have failed."""
        return not self.flags & {"fail", "fail?", "handshake", "noaddr"}

    @property
    def slot_count(self) -> int:
        return sum(len(slot_range) for slot_range in self.slots)


def parse_cluster_nodes(text: str) -> tuple[ClusterNode, ...]:
    """Parse the reply of ``CLUSTER NODES``; raises ValueError on a malformed line.

    Addresses look like ``ip:port@busport`` followed, from Redis 7.0, by
    ``,hostname`` and, from Redis 7.2 and Valkey 7.2, by ``,key=value`` fields,
    which are ignored.
    """
    return tuple(_parse_node_line(line) for line in text.splitlines() if line.strip())


def _parse_node_line(line: str) -> ClusterNode:
    fields = line.split()
    if len(fields) < 8:
        raise ValueError(f"CLUSTER NODES line has {len(fields)} fields, expected at least 8: "
                         f"{line!r}")
    node_id, address, flags, primary, _ping, _pong, epoch, link_state = fields[:8]
    try:
        endpoint, *extras = address.split(",")
        host_port, _, bus = endpoint.partition("@")
        ip, _, port = host_port.rpartition(":")
        hostname = extras[0] if extras and "=" not in extras[0] else ""
        slots: list[int] = []
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for entry in fields[8:]:
            if entry.startswith("["):
                _parse_transfer(entry, migrating, importing)
            else:
                first, _, last = entry.partition("-")
                slots.extend(SlotRange(int(first), int(last or first)).slots())
        return ClusterNode(
            id=node_id,
            ip=ip,
            port=int(port),
            bus_port=int(bus or 0),
            hostname=hostname,
            flags=frozenset(flags.split(",")),
            primary_id=None if primary == "-" else primary,
            config_epoch=int(epoch),
            link_state=link_state,
            slots=to_ranges(slots),
            migrating=migrating,
            importing=importing,
        )
    except ValueError as error:
        raise ValueError(f"invalid CLUSTER NODES line {line!r}: {error}") from None


def _parse_transfer(entry: str, migrating: dict[int, str], importing: dict[int, str]) -> None:
    """Parse ``[slot->-target]`` (migrating) or ``[slot-<-source]`` (importing)."""
    body = entry.strip("[]")
    if "->-" in body:
        slot, _, node_id = body.partition("->-")
        migrating[int(slot)] = node_id
    elif "-<-" in body:
        slot, _, node_id = body.partition("-<-")
        importing[int(slot)] = node_id
    else:
        raise ValueError(f"unknown slot transfer entry {entry!r}")


# --- Observed pods ---------------------------------------------------------

@dataclass(frozen=True)
class PodView:
    """One pod: where the cluster reaches it, its ``CLUSTER NODES`` and its ``cluster_state``.

    ``nodes`` is None when the pod did not respond. ``state`` is the
    ``cluster_state`` field of ``CLUSTER INFO`` ("ok" or "fail"), None if unknown.
    """

    ordinal: int
    address: str
    port: int
    bus_port: int
    nodes: tuple[ClusterNode, ...] | None
    state: str | None = None

    @property
    def reachable(self) -> bool:
        return self.nodes is not None

    @property
    def myself(self) -> ClusterNode | None:
        return next((node for node in self.nodes or () if node.myself), None)

    def find(self, node_id: str) -> ClusterNode | None:
        """Return this pod's entry for ``node_id``, or None if it does not know that node."""
        return next((node for node in self.nodes or () if node.id == node_id), None)

    @property
    def alone(self) -> bool:
        """True when the pod's node knows no other node (a fresh or reset node)."""
        return self.nodes is not None and len(self.nodes) == 1


# --- Steps ------------------------------------------------------------------

@dataclass(frozen=True)
class SetConfigEpoch:
    """Run ``CLUSTER SET-CONFIG-EPOCH`` on a node that knows no other node yet."""

    ordinal: int
    epoch: int

    def __str__(self) -> str:
        return f"set config epoch {self.epoch} on pod {self.ordinal}"


@dataclass(frozen=True)
class AddSlots:
    """Assign slots that no node owns to a primary with ``CLUSTER ADDSLOTSRANGE``."""

    ordinal: int
    slots: tuple[SlotRange, ...]

    def __str__(self) -> str:
        return f"assign slots {format_ranges(self.slots)} to pod {self.ordinal}"


@dataclass(frozen=True)
class Meet:
    """Introduce pod ``target`` to pod ``ordinal`` with ``CLUSTER MEET`` (an IP, not a name)."""

    ordinal: int
    target: int
    address: str
    port: int
    bus_port: int

    def __str__(self) -> str:
        return (f"introduce pod {self.target} ({self.address}:{self.port}, bus "
                f"{self.bus_port}) to pod {self.ordinal}")


@dataclass(frozen=True)
class Replicate:
    """Make pod ``ordinal`` a replica of node ``primary_id`` (pod ``primary``)."""

    ordinal: int
    primary: int
    primary_id: str

    def __str__(self) -> str:
        return f"make pod {self.ordinal} a replica of pod {self.primary} ({self.primary_id})"


@dataclass(frozen=True)
class MoveSlots:
    """Move slots and their keys from pod ``source`` to pod ``target``.

    ``target_address`` and ``target_port`` are where the source's MIGRATE
    connects to.
    """

    source: int
    target: int
    source_id: str
    target_id: str
    target_address: str
    target_port: int
    slots: tuple[SlotRange, ...]

    def __str__(self) -> str:
        count = sum(len(slot_range) for slot_range in self.slots)
        return (f"move {count} slots ({format_ranges(self.slots)}) from pod {self.source} "
                f"to pod {self.target}")


@dataclass(frozen=True)
class Forget:
    """Remove node ``node_id`` from the node tables of ``ordinals`` with ``CLUSTER FORGET``.

    The forgetting nodes ignore gossip about the node for 60 seconds, so all
    of them must forget it within that time.
    """

    node_id: str
    ordinals: tuple[int, ...]
    reason: str

    def __str__(self) -> str:
        pods = ", ".join(str(ordinal) for ordinal in self.ordinals)
        return f"forget node {self.node_id} ({self.reason}) on pods {pods}"


@dataclass(frozen=True)
class Reset:
    """Run ``CLUSTER RESET HARD`` on a pod that leaves the cluster, so it stops gossiping."""

    ordinal: int
    reason: str

    def __str__(self) -> str:
        return f"reset pod {self.ordinal} ({self.reason})"


@dataclass(frozen=True)
class Wait:
    """Nothing to do until the cluster changes by itself (gossip, a pod starting)."""

    reason: str

    def __str__(self) -> str:
        return f"wait: {self.reason}"


@dataclass(frozen=True)
class Blocked:
    """The cluster needs a person: acting automatically could lose data."""

    reason: str

    def __str__(self) -> str:
        return f"blocked: {self.reason}"


Step = SetConfigEpoch | AddSlots | Meet | Replicate | MoveSlots | Forget | Reset | Wait | Blocked


# --- Planning the next step ---------------------------------------------------

@dataclass(frozen=True)
class _Cluster:
    """Observed pods split into members and leaving pods, with lookups for ``next_step``."""

    shards: int
    replicas_per_shard: int
    members: dict[int, PodView]
    leaving: dict[int, PodView]

    def myself(self, ordinal: int) -> ClusterNode:
        node = self.pod(ordinal).myself
        assert node is not None, "only reachable pods with a myself line are members"
        return node

    def pod(self, ordinal: int) -> PodView:
        return self.members.get(ordinal) or self.leaving[ordinal]

    def ordinal_of(self, node_id: str) -> int | None:
        for ordinal, pod in {**self.members, **self.leaving}.items():
            me = pod.myself
            if me is not None and me.id == node_id:
                return ordinal
        return None

    def shard_primary(self, shard: int) -> int | None:
        """Return the pod that leads ``shard``: a primary holding slots, else an empty primary.

        An empty primary is preferred in planned order (the shard's first
        ordinal first). None when every pod of the shard is a replica.
        """
        ordinals = [o for o in shard_ordinals(shard, self.replicas_per_shard)
                    if o in self.members or o in self.leaving]
        primaries = [o for o in ordinals if self.pod(o).reachable and self.myself(o).is_primary]
        with_slots = [o for o in primaries if self.myself(o).slots]
        if with_slots:
            return with_slots[0]
        return primaries[0] if primaries else None


def next_step(shards: int, replicas_per_shard: int, pods: Mapping[int, PodView], *,
              max_slots_per_move: int = DEFAULT_MAX_SLOTS_PER_MOVE) -> Step | None:
    """Return the one step that brings the cluster closest to the plan, or None when it matches.

    ``pods`` maps each running pod's ordinal to what it reported. Pods with an
    ordinal of ``shards * (1 + replicas_per_shard)`` or more are leaving: their
    slots move away, then the others forget them. The checks run in order:

    1. every pod that should be in the cluster responds;
    2. slots that no node owns go to their planned shard (on a fresh
       cluster, after setting the config epochs);
    3. every pod meets the first pod, and then every pod sees every other;
    4. a half-finished slot move is finished;
    5. every shard has one primary and its other pods replicate it;
    6. slots move until every shard owns its balanced share;
    7. leaving pods and failed nodes that no pod runs any more are forgotten,
       and leaving pods are reset.
    """
    wanted = shards * pods_per_shard(replicas_per_shard)
    missing = [o for o in range(wanted) if o not in pods or pods[o].myself is None]
    if missing:
        return Wait(f"pods {_ordinals(missing)} are not running or do not respond")

    cluster = _Cluster(
        shards=shards,
        replicas_per_shard=replicas_per_shard,
        members={o: pods[o] for o in range(wanted)},
        leaving={o: pod for o, pod in pods.items() if o >= wanted and pod.myself is not None},
    )
    for check in (_assign_unowned_slots, _meet, _finish_slot_moves, _attach_replicas):
        step = check(cluster)
        if step is not None:
            return step
    step = _rebalance(cluster, max_slots_per_move)
    if step is not None:
        return step
    return _release(cluster)


def _ordinals(ordinals: Iterable[int]) -> str:
    return ", ".join(str(ordinal) for ordinal in sorted(ordinals))


def _assign_unowned_slots(cluster: _Cluster) -> Step | None:
    owned: set[int] = set()
    for pod in [*cluster.members.values(), *cluster.leaving.values()]:
        for node in pod.nodes or ():
            owned |= to_slots(node.slots)
    unowned = set(range(SLOT_COUNT)) - owned
    if not unowned:
        return None

    # A fresh cluster (or one whose bootstrap stopped early): first give
    # every node that has not met another one its distinct config epoch.
    for ordinal, pod in sorted(cluster.members.items()):
        me = cluster.myself(ordinal)
        if pod.alone and me.config_epoch == 0 and not me.slots:
            return SetConfigEpoch(ordinal, initial_config_epoch(ordinal))

    for plan in plan_layout(cluster.shards, cluster.replicas_per_shard):
        slots = unowned & set(plan.slots.slots())
        if not slots:
            continue
        ordinal = cluster.shard_primary(plan.index)
        if ordinal is None:
            return Blocked(f"slots {format_ranges(to_ranges(slots))} have no owner and shard "
                           f"{plan.index} has no primary to take them")
        return AddSlots(ordinal, to_ranges(slots))
    return None


def _seed(cluster: _Cluster) -> int:
    """Return the pod that introduces the others: the lowest ordinal holding slots."""
    for ordinal in sorted(cluster.members):
        if cluster.myself(ordinal).slots:
            return ordinal
    return min(cluster.members)


def _stale(entry: ClusterNode, pod: PodView) -> bool:
    """True when ``entry`` points at another address than the one ``pod`` has now."""
    return (entry.ip, entry.port, entry.bus_port) != (pod.address, pod.port, pod.bus_port)


def _handshaking(view: PodView, pod: PodView) -> bool:
    return any("handshake" in node.flags and node.ip == pod.address and node.port == pod.port
               for node in view.nodes or ())


def _meet(cluster: _Cluster) -> Step | None:
    seed = _seed(cluster)
    seed_pod = cluster.members[seed]
    for ordinal, pod in sorted(cluster.members.items()):
        if ordinal == seed:
            continue
        entry = seed_pod.find(cluster.myself(ordinal).id)
        if entry is not None and not _stale(entry, pod):
            continue
        if _handshaking(seed_pod, pod):
            return Wait(f"pod {seed} is in a handshake with pod {ordinal}")
        return Meet(seed, ordinal, pod.address, pod.port, pod.bus_port)

    # The seed knows everyone; the others learn about each other by gossip.
    for ordinal, pod in sorted(cluster.members.items()):
        for other, other_pod in sorted(cluster.members.items()):
            if other == ordinal:
                continue
            entry = pod.find(cluster.myself(other).id)
            if entry is None:
                return Wait(f"pod {ordinal} does not know pod {other} yet")
            if _stale(entry, other_pod) and not entry.usable:
                # Gossip does not correct an address a node still uses; a
                # MEET with the new address does.
                if _handshaking(pod, other_pod):
                    return Wait(f"pod {ordinal} is in a handshake with pod {other}")
                return Meet(ordinal, other, other_pod.address, other_pod.port,
                            other_pod.bus_port)
            if not entry.usable:
                flags = ",".join(sorted(entry.flags - {"master", "slave"}))
                return Wait(f"pod {ordinal} sees pod {other} as {flags}")
    return None


def _finish_slot_moves(cluster: _Cluster) -> Step | None:
    """Finish a slot move that a previous step left with MIGRATING or IMPORTING marks."""
    transfers: dict[tuple[str, str], set[int]] = {}
    for pod in [*cluster.members.values(), *cluster.leaving.values()]:
        me = pod.myself
        for slot, target_id in me.migrating.items():
            transfers.setdefault((me.id, target_id), set()).add(slot)
        for slot, source_id in me.importing.items():
            transfers.setdefault((source_id, me.id), set()).add(slot)

    for (source_id, target_id), slots in sorted(transfers.items()):
        source = cluster.ordinal_of(source_id)
        target = cluster.ordinal_of(target_id)
        if source is None or target is None:
            gone = source_id if source is None else target_id
            return Blocked(f"slots {format_ranges(to_ranges(slots))} are half moved between "
                           f"nodes {source_id} and {target_id}, but no running pod is node "
                           f"{gone}; finish or cancel the move with CLUSTER SETSLOT")
        target_pod = cluster.pod(target)
        return _unless_down(cluster, source, target) or MoveSlots(
            source, target, source_id, target_id, target_pod.address, target_pod.port,
            to_ranges(slots))
    return None


def _unless_down(cluster: _Cluster, *ordinals: int) -> Wait | None:
    """Return a Wait while one of the pods reports a cluster_state other than ok.

    Such a node replies CLUSTERDOWN to the RESTORE-ASKING that MIGRATE
    sends. A node reports fail until it has heard who owns every slot, and
    Redis keeps a primary in fail for at least 2 s after it starts
    (CLUSTER_WRITABLE_DELAY in cluster.c), so a primary that just joined
    rejects MIGRATE for a while.
    """
    for ordinal in ordinals:
        state = cluster.pod(ordinal).state
        if state not in (None, "ok"):
            return Wait(f"pod {ordinal} reports cluster_state {state}")
    return None


def _attach_replicas(cluster: _Cluster) -> Step | None:
    for shard in range(cluster.shards):
        ordinals = shard_ordinals(shard, cluster.replicas_per_shard)
        owners = [o for o in ordinals
                  if cluster.myself(o).is_primary and cluster.myself(o).slots]
        if len(owners) > 1:
            return Blocked(f"pods {_ordinals(owners)} of shard {shard} are all primaries "
                           "holding slots; move the slots of all but one away")
        for ordinal in ordinals:
            waiting = _holds_only_copy(cluster, ordinal)
            if waiting is not None:
                return waiting

        primary = cluster.shard_primary(shard)
        if primary is None:
            # Every pod of the shard follows a primary elsewhere. A reset
            # replica loses only a copy and comes back as an empty primary.
            return Reset(ordinals[0], f"shard {shard} has no primary")
        primary_id = cluster.myself(primary).id
        for ordinal in ordinals:
            me = cluster.myself(ordinal)
            if ordinal == primary or (me.is_replica and me.primary_id == primary_id):
                continue
            # CLUSTER REPLICATE rejects a target that the pod's own table
            # does not show as a primary. That happens right after a
            # promotion, before gossip reaches the pod.
            target = cluster.pod(ordinal).find(primary_id)
            if target is None or not target.is_primary:
                return Wait(f"pod {ordinal} does not see pod {primary} as a primary yet")
            return Replicate(ordinal, primary, primary_id)
    return None


def _holds_only_copy(cluster: _Cluster, ordinal: int) -> Wait | None:
    """Return a Wait when the pod replicates a primary that owns slots and is gone or failing.

    Until Redis promotes it, such a replica may hold the only copy of those
    slots' keys, so neither CLUSTER REPLICATE nor CLUSTER RESET may touch it.
    A primary whose pod was replaced is gone before the replica notices: the
    replacement runs a new, empty node, and the replica still lists the old
    node as usable until cluster-node-timeout passes.
    """
    me = cluster.myself(ordinal)
    if not me.is_replica or me.primary_id is None:
        return None
    followed = cluster.pod(ordinal).find(me.primary_id)
    if followed is None or not followed.slots:
        return None
    if not followed.usable:
        state = "is failing"
    elif cluster.ordinal_of(followed.id) is None:
        state = "runs in no responding pod"
    else:
        return None
    return Wait(f"pod {ordinal} replicates node {followed.id}, which owns slots "
                f"{format_ranges(followed.slots)} and {state}; waiting for Redis to "
                "promote a replica")


def _rebalance(cluster: _Cluster, max_slots_per_move: int) -> Step | None:
    owned: dict[int, set[int]] = {}
    owner_of: dict[int, int] = {}
    for ordinal, pod in sorted({**cluster.members, **cluster.leaving}.items()):
        for slot in to_slots(pod.myself.slots):
            if slot in owner_of:
                return Wait(f"pods {owner_of[slot]} and {ordinal} both claim slot {slot}")
            owner_of[slot] = ordinal
        shard = shard_of(ordinal, cluster.replicas_per_shard)
        owned.setdefault(shard, set()).update(to_slots(pod.myself.slots))
    if len(owner_of) < SLOT_COUNT:
        orphaned = to_ranges(set(range(SLOT_COUNT)) - set(owner_of))
        return Blocked(f"slots {format_ranges(orphaned)} belong to nodes that no responding pod "
                       "runs; bring those pods back, or reassign the slots by hand")

    moves = plan_rebalance(owned, cluster.shards)
    if not moves:
        return None
    move = moves[0]
    batch = sorted(to_slots(move.slots))[:max_slots_per_move]
    source = owner_of[batch[0]]
    target = cluster.shard_primary(move.target)
    if target is None:
        return Wait(f"shard {move.target} has no primary to receive slots yet")
    # After a failover in the middle of a move, a donor shard's slots may sit
    # on two pods. Each step moves only the part that one pod owns.
    batch = [slot for slot in batch if owner_of[slot] == source]
    target_pod = cluster.pod(target)
    return _unless_down(cluster, source, target) or MoveSlots(
        source, target, cluster.myself(source).id, cluster.myself(target).id,
        target_pod.address, target_pod.port, to_ranges(batch))


def _release(cluster: _Cluster) -> Step | None:
    """Forget leaving pods and vanished nodes everywhere, then reset the leaving pods."""
    member_ids = {cluster.myself(o).id for o in cluster.members}
    leaving_ids = {cluster.myself(o).id: o for o in cluster.leaving}
    unsettled: list[str] = []

    extra: dict[str, list[int]] = {}
    for ordinal, pod in sorted(cluster.members.items()):
        for node in pod.nodes:
            if node.id not in member_ids and "handshake" not in node.flags:
                extra.setdefault(node.id, []).append(ordinal)

    for node_id, ordinals in sorted(extra.items()):
        entries = [cluster.members[o].find(node_id) for o in ordinals]
        stale = [o for o, entry in zip(ordinals, entries) if entry.slots]
        if stale:
            # _rebalance found every slot owned by a member by the members'
            # own word, so these views are only behind.
            return Wait(f"pods {_ordinals(stale)} still see node {node_id} as an owner of "
                        "slots; waiting for gossip")
        followers = [o for o in cluster.members if cluster.myself(o).primary_id == node_id]
        if followers:
            return Wait(f"pods {_ordinals(followers)} still replicate node {node_id}")
        if node_id in leaving_ids:
            return Forget(node_id, tuple(ordinals), f"pod {leaving_ids[node_id]} is leaving")
        if all(entry.failed for entry in entries):
            return Forget(node_id, tuple(ordinals), "failed and no pod runs it any more")
        unsettled.append(node_id)

    for ordinal, pod in sorted(cluster.leaving.items()):
        if not pod.alone or pod.myself.slots:
            return Reset(ordinal, "it is leaving the cluster")
    if unsettled:
        return Wait(f"nodes {', '.join(unsettled)} run in no pod but are not marked failed yet")
    return None


# --- Scale-down and health ----------------------------------------------------

def required_pod_count(shards: int, replicas_per_shard: int,
                       pods: Mapping[int, PodView]) -> int:
    """Return how many pods the StatefulSet must keep so no pod leaves with data.

    A leaving pod may go once it answers, knows only itself and owns no
    slots, which ``next_step`` arranges. A leaving pod that does not respond
    is kept, because it may still own slots that no other node has.
    """
    wanted = shards * pods_per_shard(replicas_per_shard)
    keep = wanted
    for ordinal, pod in pods.items():
        if ordinal < wanted:
            continue
        me = pod.myself
        released = me is not None and pod.alone and not me.slots
        if not released:
            keep = max(keep, ordinal + 1)
    return keep


@dataclass(frozen=True)
class Health:
    """The ``ClusterHealthy`` condition's value, reason and message."""

    healthy: bool
    reason: str
    message: str


def assess_health(info: Mapping[str, str], nodes: Sequence[ClusterNode], shards: int,
                  replicas_per_shard: int) -> Health:
    """Judge the cluster from one node's ``CLUSTER INFO`` and ``CLUSTER NODES``.

    Healthy means ``cluster_state:ok``, every slot assigned and served by a
    node that is not failing, exactly the planned number of nodes, and each
    of the ``shards`` primaries followed by ``replicas_per_shard`` usable replicas.
    """
    state = info.get("cluster_state", "unknown")
    if state != "ok":
        return Health(False, "ClusterStateFail", f"cluster_state is {state}")
    assigned = int(info.get("cluster_slots_assigned", 0))
    served = int(info.get("cluster_slots_ok", 0))
    if assigned != SLOT_COUNT or served != SLOT_COUNT:
        return Health(False, "SlotsNotCovered",
                      f"{served} of {SLOT_COUNT} slots are served ({assigned} assigned)")

    wanted = shards * pods_per_shard(replicas_per_shard)
    nodes = [node for node in nodes if "handshake" not in node.flags]
    if len(nodes) != wanted:
        return Health(False, "NodeCountMismatch", f"the cluster has {len(nodes)} nodes, "
                      f"the spec asks for {wanted}")
    primaries = [node for node in nodes if node.is_primary and node.slots]
    if len(primaries) != shards:
        return Health(False, "ShardCountMismatch", f"{len(primaries)} primaries hold slots, "
                      f"the spec asks for {shards}")
    short = []
    for primary in primaries:
        replicas = [node for node in nodes if node.primary_id == primary.id and node.usable]
        if len(replicas) < replicas_per_shard:
            short.append(f"{primary.hostname or primary.id} has {len(replicas)}")
    if short:
        return Health(False, "ReplicasMissing", f"each primary needs {replicas_per_shard} "
                      f"usable replicas: {'; '.join(short)}")
    return Health(True, "ClusterOK", f"cluster_state ok: {shards} shards with "
                  f"{replicas_per_shard} replicas each serve all {SLOT_COUNT} slots")
