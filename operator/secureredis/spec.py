"""Typed, defaulted and validated view of a SecureRedis object.

The CRD schema and its CEL rules reject most bad input at admission. This
module applies the same defaults (so ``secure-redis render`` on a file that
never met an API server sees what the cluster would store) and checks what a
schema cannot express: ACL syntax against the chosen server version, rename
targets, Secret references and cross-field limits.

``load(obj)`` returns a ``SecureRedis`` or raises ``SpecError`` holding every
problem found, each as a ``FieldError`` whose path is the JSON path of the
field (``spec.acl.users[1].rules[0]``) and whose message says how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from . import acl
from .engines import DEFAULT_ENGINE, ENGINES, command_table

MODES = ("standalone", "replication", "cluster")
PERSISTENCE = ("none", "rdb", "aof")
ISSUERS = ("operator", "certManager", "secret")
CLIENT_AUTH = ("required", "optional", "none")
TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
KEY_ALGORITHMS = ("ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096")
MAXMEMORY_POLICIES = (
    "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
)
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# The kubelet refreshes mounted Secrets after its sync period (1 minute by
# default) plus some jitter, so old credentials must outlive that.
MIN_GRACE_PERIOD = timedelta(minutes=2)
# The CRD's defaults for spec.tls.issuerRef. Applying them here too keeps a
# rendered object equal to what the API server stores.
ISSUER_REF_DEFAULTS = {"kind": "Issuer", "group": "cert-manager.io"}

# Mozilla's "intermediate" TLS 1.2 suites that OpenSSL 3 names this way;
# every one has forward secrecy and an AEAD cipher.
DEFAULT_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
DEFAULT_TLS13_CIPHERSUITES = (
    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
)

# SecureRedis names end up in pod names (<name>-<ordinal>), Secret names
# (<name>-user-<user>) and label values, so they are kept short.
MAX_NAME_LENGTH = 40
NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
# A rename target is what clients type instead of the command name; Redis
# accepts any bytes, but only this alphabet survives shells, URLs and YAML.
RENAME_TARGET_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
# "ms" comes before "m", or "250ms" would be read as 250 minutes.
DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
QUANTITY_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
QUANTITY_FACTORS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}

# The commands the hardening checklist wants renamed or disabled, and the
# default action for each. CONFIG stays reachable under a random name because
# the operator reloads certificates with CONFIG SET.
DEFAULT_RENAMES = {
    "flushall": "",
    "flushdb": "",
    "shutdown": "",
    "debug": "random",
    "keys": "random",
    "config": "random",
}
CHECKLIST_COMMANDS = ("flushall", "flushdb", "config", "debug", "shutdown")

# maxmemory defaults to this share of the container's memory limit, leaving
# room for replication buffers, client buffers and fragmentation.
MAXMEMORY_SHARE_OF_LIMIT = 0.8


class SpecError(ValueError):
    """A SecureRedis that cannot be deployed; ``errors`` lists every reason."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class User:
    name: str
    rules: tuple[str, ...]
    enabled: bool = True
    admin: bool = False
    password_secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True)
class Rotation:
    interval: timedelta | None
    grace_period: timedelta


@dataclass(frozen=True)
class TLS:
    issuer: str = "operator"
    issuer_ref: Mapping[str, str] | None = None
    secret_name: str | None = None
    client_auth: str = "required"
    protocols: tuple[str, ...] = TLS_PROTOCOLS
    ciphers: str = DEFAULT_TLS12_CIPHERS
    ciphersuites: str = DEFAULT_TLS13_CIPHERSUITES
    key_algorithm: str = "ECDSA-P256"
    certificate_duration: timedelta = timedelta(days=90)
    renew_before: timedelta = timedelta(days=30)
    ca_duration: timedelta = timedelta(days=3650)


@dataclass(frozen=True)
class Storage:
    persistence: str = "none"
    size: str = "1Gi"
    storage_class_name: str | None = None
    delete_claims_with_resource: bool = False


@dataclass(frozen=True)
class Memory:
    maxmemory_bytes: int
    policy: str


@dataclass(frozen=True)
class Cluster:
    shards: int = 3
    replicas_per_shard: int = 1


@dataclass(frozen=True)
class NetworkPolicy:
    enabled: bool = True
    # Each entry is a NetworkPolicyPeer (podSelector and/or namespaceSelector).
    clients: tuple[Mapping[str, Any], ...] = ()
    operator_namespace_selector: Mapping[str, Any] | None = None
    operator_pod_selector: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Metrics:
    enabled: bool = False
    image: str | None = None
    port: int = 9121
    # NetworkPolicyPeers allowed to scrape the exporter's port.
    scrapers: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Pod:
    image: str
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    topology_spread_constraints: tuple[Mapping[str, Any], ...] = ()
    priority_class_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SecureRedis:
    """A validated SecureRedis: metadata, spec with every default applied."""

    name: str
    namespace: str
    uid: str | None
    generation: int | None
    mode: str
    version: str
    replicas: int
    cluster: Cluster
    pod: Pod
    storage: Storage
    memory: Memory
    tls: TLS
    users: tuple[User, ...]
    rotation: Rotation
    renames: Mapping[str, str]
    network_policy: NetworkPolicy
    slowlog_slower_than_us: int
    slowlog_max_len: int
    acl_log_max_len: int
    pdb_enabled: bool
    pdb_max_unavailable: int
    metrics: Metrics
    cluster_domain: str
    # Replication mode: how long no primary may serve before the operator
    # promotes the most up-to-date replica.
    failover_after: timedelta = timedelta(seconds=30)

    @property
    def pod_count(self) -> int:
        if self.mode == "cluster":
            return self.cluster.shards * (1 + self.cluster.replicas_per_shard)
        return self.replicas

    @property
    def engine(self):
        return ENGINES[self.version]


DEFAULT_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as ``2160h`` or ``1h30m``."""
    if not isinstance(text, str) or not DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration; write it like 720h, 90m or 1h30m")
    seconds = 0.0
    for number, unit in DURATION_PART_RE.findall(text):
        seconds += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return timedelta(seconds=seconds)


def parse_quantity(text: Any) -> int:
    """Parse a Kubernetes memory quantity (``256Mi``, ``1G``, ``1048576``) into bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = QUANTITY_RE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a memory quantity; write it like 256Mi or 2Gi")
    return int(float(match.group(1)) * QUANTITY_FACTORS[match.group(2)])


class _Collector:
    """Accumulates field errors so a user sees every problem at once."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def choice(self, path: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.add(path, f"{value!r} is not supported; use one of: {', '.join(allowed)}")

    def duration(self, path: str, value: Any, default: timedelta | None) -> timedelta | None:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as error:
            self.add(path, str(error))
            return default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def load(obj: Mapping[str, Any]) -> SecureRedis:
    """Build a SecureRedis from a Kubernetes object, applying defaults and validating it."""
    errors = _Collector()
    metadata = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))

    name = metadata.get("name") or ""
    if not NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        errors.add("metadata.name", f"{name!r} is invalid; use at most {MAX_NAME_LENGTH} "
                   "lowercase letters, digits and '-', starting with a letter")
    namespace = metadata.get("namespace") or "default"

    mode = spec.get("mode", "standalone")
    errors.choice("spec.mode", mode, MODES)

    version = spec.get("version", DEFAULT_ENGINE)
    errors.choice("spec.version", version, tuple(ENGINES))
    if not isinstance(version, str) or version not in ENGINES:
        version = DEFAULT_ENGINE

    replicas = _load_replicas(errors, mode, spec.get("replicas"))
    cluster = _load_cluster(errors, mode, spec.get("cluster"))
    pod = _load_pod(errors, spec, version)
    storage = _load_storage(errors, _mapping(spec.get("storage")))
    memory = _load_memory(errors, _mapping(spec.get("memory")), pod.resources, storage.persistence)
    tls = _load_tls(errors, _mapping(spec.get("tls")))
    users = _load_users(errors, _mapping(spec.get("acl")).get("users", []), version)
    rotation = _load_rotation(errors, _mapping(_mapping(spec.get("acl")).get("rotation")))
    renames = _load_renames(errors, _mapping(_mapping(spec.get("commands")).get("rename")), version)
    network_policy = _load_network_policy(errors, _mapping(spec.get("networkPolicy")))

    slowlog = _mapping(spec.get("slowlog"))
    slower_than = slowlog.get("slowerThanMicroseconds", 10000)
    slowlog_max_len = slowlog.get("maxLen", 128)
    if not isinstance(slower_than, int) or slower_than < 0:
        errors.add("spec.slowlog.slowerThanMicroseconds",
                   "must be an integer >= 0; 0 logs every command, 10000 logs commands over 10 ms")
    if not isinstance(slowlog_max_len, int) or slowlog_max_len < 1:
        errors.add("spec.slowlog.maxLen", "must be an integer >= 1 so slow commands are kept")

    acl_log_max_len = _mapping(spec.get("aclLog")).get("maxLen", 128)
    if not isinstance(acl_log_max_len, int) or acl_log_max_len < 1:
        errors.add("spec.aclLog.maxLen",
                   "must be an integer >= 1; the checklist requires ACL LOG to be enabled")

    pdb = _mapping(spec.get("podDisruptionBudget"))
    pdb_max_unavailable = pdb.get("maxUnavailable", 1)
    if not isinstance(pdb_max_unavailable, int) or pdb_max_unavailable < 1:
        errors.add("spec.podDisruptionBudget.maxUnavailable", "must be an integer >= 1")

    metrics = _load_metrics(errors, _mapping(spec.get("metrics")))

    cluster_domain = spec.get("clusterDomain", "cluster.local")
    if not isinstance(cluster_domain, str) or not all(
        DNS_LABEL_RE.match(part) for part in cluster_domain.split(".")
    ):
        errors.add("spec.clusterDomain", f"{cluster_domain!r} is not a DNS domain; "
                   "use the cluster's domain, usually cluster.local")

    replication = _mapping(spec.get("replication"))
    if replication and mode != "replication":
        errors.add("spec.replication", f"is only used in replication mode; remove it or set "
                   f"spec.mode to replication (spec.mode is {mode!r})")
    failover_after = errors.duration("spec.replication.failoverAfter",
                                     replication.get("failoverAfter"), timedelta(seconds=30))
    if failover_after < timedelta(seconds=5):
        errors.add("spec.replication.failoverAfter", "must be at least 5s, so a pod restart "
                   "or a short network blip does not cause a failover")

    if errors.errors:
        raise SpecError(errors.errors)

    return SecureRedis(
        name=name,
        namespace=namespace,
        uid=metadata.get("uid"),
        generation=metadata.get("generation"),
        mode=mode,
        version=version,
        replicas=replicas,
        cluster=cluster,
        pod=pod,
        storage=storage,
        memory=memory,
        tls=tls,
        users=users,
        rotation=rotation,
        renames=renames,
        network_policy=network_policy,
        slowlog_slower_than_us=slower_than,
        slowlog_max_len=slowlog_max_len,
        acl_log_max_len=acl_log_max_len,
        pdb_enabled=bool(pdb.get("enabled", True)),
        pdb_max_unavailable=pdb_max_unavailable,
        metrics=metrics,
        cluster_domain=cluster_domain,
        failover_after=failover_after,
    )


def _load_replicas(errors: _Collector, mode: str, replicas: Any) -> int:
    if mode == "standalone":
        if replicas not in (None, 1):
            errors.add("spec.replicas", "standalone mode runs exactly 1 pod; remove spec.replicas "
                       "or set spec.mode to replication")
        return 1
    if mode == "replication":
        if replicas is None:
            return 3
        if not isinstance(replicas, int) or replicas < 2:
            errors.add("spec.replicas", "replication mode needs at least 2 pods "
                       "(1 primary and 1 replica); set spec.replicas to 2 or more")
            return 3
        return replicas
    if replicas is not None:
        errors.add("spec.replicas", "cluster mode sizes itself from spec.cluster.shards and "
                   "spec.cluster.replicasPerShard; remove spec.replicas")
    return 0


def _load_cluster(errors: _Collector, mode: str, raw: Any) -> Cluster:
    # Like the CRD's rule, an empty spec.cluster outside cluster mode is an error too.
    if raw is not None and mode != "cluster":
        errors.add("spec.cluster", f"is only used in cluster mode; remove it or set spec.mode "
                   f"to cluster (spec.mode is {mode!r})")
    cluster = _mapping(raw)
    shards = cluster.get("shards", 3)
    per_shard = cluster.get("replicasPerShard", 1)
    if not isinstance(shards, int) or shards < 3:
        errors.add("spec.cluster.shards", "Redis Cluster needs at least 3 primaries; "
                   "set spec.cluster.shards to 3 or more")
        shards = 3
    if not isinstance(per_shard, int) or not 0 <= per_shard <= 5:
        errors.add("spec.cluster.replicasPerShard", "must be an integer from 0 to 5")
        per_shard = 1
    return Cluster(shards=shards, replicas_per_shard=per_shard)


def _load_pod(errors: _Collector, spec: Mapping[str, Any], version: str) -> Pod:
    image = spec.get("image") or ENGINES[version].image
    pull_policy = spec.get("imagePullPolicy", "IfNotPresent")
    errors.choice("spec.imagePullPolicy", pull_policy, PULL_POLICIES)

    pull_secrets = []
    for index, ref in enumerate(spec.get("imagePullSecrets") or []):
        secret_name = _mapping(ref).get("name")
        if not isinstance(secret_name, str) or not SECRET_NAME_RE.match(secret_name):
            errors.add(f"spec.imagePullSecrets[{index}].name",
                       f"{secret_name!r} is not a Secret name")
        else:
            pull_secrets.append(secret_name)

    resources = spec.get("resources") or DEFAULT_RESOURCES
    if not isinstance(resources, Mapping):
        errors.add("spec.resources", "must be an object with requests and limits, like a "
                   "container's resources")
        resources = DEFAULT_RESOURCES
    for section in ("requests", "limits"):
        for resource, quantity in _mapping(resources.get(section)).items():
            if resource == "memory":
                try:
                    parse_quantity(quantity)
                except ValueError as error:
                    errors.add(f"spec.resources.{section}.memory", str(error))

    labels = dict(_mapping(spec.get("podLabels")))
    for key in labels:
        if key.startswith("app.kubernetes.io/") or key.startswith("secureredis.io/"):
            errors.add(f"spec.podLabels[{key}]", "labels under app.kubernetes.io/ and "
                       "secureredis.io/ are set by the operator; choose another key")

    return Pod(
        image=image,
        image_pull_policy=pull_policy,
        image_pull_secrets=tuple(pull_secrets),
        resources=resources,
        node_selector=dict(_mapping(spec.get("nodeSelector"))),
        tolerations=tuple(spec.get("tolerations") or ()),
        affinity=spec.get("affinity"),
        topology_spread_constraints=tuple(spec.get("topologySpreadConstraints") or ()),
        priority_class_name=spec.get("priorityClassName"),
        labels=labels,
        annotations=dict(_mapping(spec.get("podAnnotations"))),
    )


def _load_storage(errors: _Collector, storage: Mapping[str, Any]) -> Storage:
    persistence = storage.get("persistence", "none")
    errors.choice("spec.storage.persistence", persistence, PERSISTENCE)
    size = storage.get("size", "1Gi")
    try:
        parse_quantity(size)
    except ValueError as error:
        errors.add("spec.storage.size", str(error))
    return Storage(
        persistence=persistence,
        size=size,
        storage_class_name=storage.get("storageClassName"),
        delete_claims_with_resource=bool(storage.get("deleteClaimsWithResource", False)),
    )


def _load_memory(errors: _Collector, memory: Mapping[str, Any], resources: Mapping[str, Any],
                 persistence: str) -> Memory:
    # A cache without persistence evicts; a store with persistence refuses
    # writes when full rather than silently dropping data.
    policy = memory.get("policy", "allkeys-lru" if persistence == "none" else "noeviction")
    errors.choice("spec.memory.policy", policy, MAXMEMORY_POLICIES)

    limit = _mapping(resources.get("limits")).get("memory")
    if "maxmemory" in memory:
        try:
            maxmemory = parse_quantity(memory["maxmemory"])
        except ValueError as error:
            errors.add("spec.memory.maxmemory", str(error))
            return Memory(0, policy)
        if maxmemory <= 0:
            errors.add("spec.memory.maxmemory", "must be greater than 0; an unlimited Redis "
                       "can exhaust the node's memory")
        if limit is not None:
            try:
                if maxmemory > parse_quantity(limit):
                    errors.add("spec.memory.maxmemory", f"{memory['maxmemory']} exceeds the "
                               f"container memory limit {limit}; lower it to at most 80% of "
                               "the limit")
            except ValueError:
                pass
        return Memory(maxmemory, policy)

    if limit is None:
        errors.add("spec.memory.maxmemory", "is required when spec.resources.limits.memory is "
                   "not set; set one of them so Redis cannot use unbounded memory")
        return Memory(0, policy)
    try:
        return Memory(int(parse_quantity(limit) * MAXMEMORY_SHARE_OF_LIMIT), policy)
    except ValueError:
        return Memory(0, policy)


def _load_tls(errors: _Collector, tls: Mapping[str, Any]) -> TLS:
    issuer = tls.get("issuer", "operator")
    errors.choice("spec.tls.issuer", issuer, ISSUERS)
    issuer_ref = tls.get("issuerRef")
    secret_name = tls.get("secretName")
    if issuer == "certManager" and not _mapping(issuer_ref).get("name"):
        errors.add("spec.tls.issuerRef.name", "is required when spec.tls.issuer is certManager; "
                   "name the cert-manager Issuer or ClusterIssuer")
    if issuer == "secret":
        if not isinstance(secret_name, str) or not SECRET_NAME_RE.match(secret_name):
            errors.add("spec.tls.secretName", "is required when spec.tls.issuer is secret; name "
                       "a Secret holding the CA as tls.crt and its key as tls.key")

    client_auth = tls.get("clientAuth", "required")
    errors.choice("spec.tls.clientAuth", client_auth, CLIENT_AUTH)

    protocols = tuple(tls.get("protocols") or TLS_PROTOCOLS)
    for index, protocol in enumerate(protocols):
        if protocol not in TLS_PROTOCOLS:
            errors.add(f"spec.tls.protocols[{index}]", f"{protocol!r} is not allowed; TLS "
                       "before 1.2 is insecure, use TLSv1.2 and/or TLSv1.3")
    if len(set(protocols)) != len(protocols):
        errors.add("spec.tls.protocols", "lists a protocol twice; list each once")

    ciphers = tls.get("ciphers", DEFAULT_TLS12_CIPHERS)
    ciphersuites = tls.get("ciphersuites", DEFAULT_TLS13_CIPHERSUITES)
    for path, value in (("spec.tls.ciphers", ciphers), ("spec.tls.ciphersuites", ciphersuites)):
        if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_:+-]+$", value):
            errors.add(path, "must be a non-empty OpenSSL cipher list separated by ':' with no "
                       "spaces or quotes")

    key_algorithm = tls.get("keyAlgorithm", "ECDSA-P256")
    errors.choice("spec.tls.keyAlgorithm", key_algorithm, KEY_ALGORITHMS)

    duration = errors.duration("spec.tls.certificateDuration", tls.get("certificateDuration"),
                               timedelta(days=90))
    renew_before = errors.duration("spec.tls.renewBefore", tls.get("renewBefore"),
                                   timedelta(days=30))
    ca_duration = errors.duration("spec.tls.caDuration", tls.get("caDuration"),
                                  timedelta(days=3650))
    if duration < timedelta(hours=1):
        errors.add("spec.tls.certificateDuration", "must be at least 1h")
    if renew_before >= duration:
        errors.add("spec.tls.renewBefore", "must be shorter than spec.tls.certificateDuration, "
                   "or certificates would be renewed as soon as they are issued")
    if ca_duration < duration:
        errors.add("spec.tls.caDuration", "must be at least spec.tls.certificateDuration, "
                   "because a leaf cannot outlive the CA that signed it")

    return TLS(
        issuer=issuer,
        issuer_ref={**ISSUER_REF_DEFAULTS, **_mapping(issuer_ref)} if issuer_ref else None,
        secret_name=secret_name,
        client_auth=client_auth,
        protocols=protocols,
        ciphers=ciphers,
        ciphersuites=ciphersuites,
        key_algorithm=key_algorithm,
        certificate_duration=duration,
        renew_before=renew_before,
        ca_duration=ca_duration,
    )


def _load_users(errors: _Collector, raw_users: Any, version: str) -> tuple[User, ...]:
    if not isinstance(raw_users, list):
        errors.add("spec.acl.users", "must be a list of users")
        return ()
    table = command_table(version)
    users = []
    secret_suffixes: dict[str, str] = {}
    for index, raw in enumerate(raw_users):
        path = f"spec.acl.users[{index}]"
        raw = _mapping(raw)
        name = raw.get("name")
        problem = acl.check_user_name(name)
        if problem:
            errors.add(f"{path}.name", problem)
        else:
            suffix = acl.secret_suffix(name)
            if suffix in secret_suffixes:
                errors.add(f"{path}.name", f"{name!r} collides with user "
                           f"{secret_suffixes[suffix]!r}: both map to the Secret suffix "
                           f"{suffix!r} ('_' becomes '-'); rename one of them")
            secret_suffixes[suffix] = name

        admin = bool(raw.get("admin", False))
        rules = raw.get("rules")
        if not isinstance(rules, list) or not rules:
            errors.add(f"{path}.rules", "must list at least one ACL rule, for example "
                       "[\"~app:*\", \"+@read\"]")
            rules = []
        for rule_index, rule in enumerate(rules):
            for problem in acl.check_rule(rule, table, admin=admin):
                errors.add(f"{path}.rules[{rule_index}]", problem)

        ref = raw.get("passwordSecretRef")
        password_ref = None
        if ref is not None:
            ref = _mapping(ref)
            ref_name, ref_key = ref.get("name"), ref.get("key", "password")
            if not isinstance(ref_name, str) or not SECRET_NAME_RE.match(ref_name):
                errors.add(f"{path}.passwordSecretRef.name",
                           f"{ref_name!r} is not a Secret name")
            if not isinstance(ref_key, str) or not SECRET_KEY_RE.match(ref_key):
                errors.add(f"{path}.passwordSecretRef.key", f"{ref_key!r} is not a Secret key")
            password_ref = SecretKeyRef(str(ref_name), str(ref_key))

        users.append(User(
            name=str(name),
            rules=tuple(str(r) for r in rules),
            enabled=bool(raw.get("enabled", True)),
            admin=admin,
            password_secret_ref=password_ref,
        ))
    return tuple(users)


def _load_rotation(errors: _Collector, rotation: Mapping[str, Any]) -> Rotation:
    interval = errors.duration("spec.acl.rotation.interval", rotation.get("interval"), None)
    grace = errors.duration("spec.acl.rotation.gracePeriod", rotation.get("gracePeriod"),
                            timedelta(hours=1))
    if interval is not None and interval < timedelta(hours=1):
        errors.add("spec.acl.rotation.interval", "must be at least 1h; omit it to rotate only "
                   "on demand")
    if grace < MIN_GRACE_PERIOD:
        errors.add("spec.acl.rotation.gracePeriod", "must be at least 2m: the kubelet can take "
                   "over a minute to update a mounted Secret, and clients that read the old "
                   "password until then would fail; use 2m or more")
    if interval is not None and grace >= interval:
        errors.add("spec.acl.rotation.gracePeriod", "must be shorter than "
                   "spec.acl.rotation.interval, or two rotations would overlap")
    return Rotation(interval=interval, grace_period=grace)


def _load_renames(errors: _Collector, requested: Mapping[str, Any], version: str) -> dict[str, str]:
    table = command_table(version)
    renames = dict(DEFAULT_RENAMES)
    for command, target in requested.items():
        path = f"spec.commands.rename[{command}]"
        lowered = str(command).lower()
        if not table.has_command(lowered):
            errors.add(path, f"{command!r} is not a {table.flavor} {table.version} command")
            continue
        if not isinstance(target, str):
            errors.add(path, 'must be a string: "" disables the command, "random" picks a '
                       "secret name, anything else is the new name")
            continue
        if lowered == "config" and target == "":
            errors.add(path, "CONFIG cannot be disabled because the operator reloads TLS "
                       'certificates with CONFIG SET; use "random" or a name of your own')
            continue
        if target not in ("", "random") and not RENAME_TARGET_RE.match(target):
            errors.add(path, f"{target!r} is not a valid new name; use 8 to 64 letters, digits, "
                       "'_' or '-', \"\" to disable, or \"random\"")
            continue
        if target.lower() == lowered or (target and table.has_command(target.lower())):
            errors.add(path, f"{target!r} is an existing command name; pick a name no command "
                       "has, \"\" or \"random\"")
            continue
        renames[lowered] = target

    taken: dict[str, str] = {}
    for command, target in renames.items():
        if target in ("", "random"):
            continue
        if target.lower() in taken:
            errors.add(f"spec.commands.rename[{command}]", f"{target!r} is also the new name of "
                       f"{taken[target.lower()]}; every new name must be unique")
        taken[target.lower()] = command
    return renames


def _load_network_policy(errors: _Collector, policy: Mapping[str, Any]) -> NetworkPolicy:
    clients = []
    for index, client in enumerate(policy.get("clients") or []):
        client = _mapping(client)
        if not client.get("podSelector") and not client.get("namespaceSelector"):
            errors.add(f"spec.networkPolicy.clients[{index}]", "needs a podSelector, a "
                       "namespaceSelector or both; an empty entry would admit every pod")
        clients.append(dict(client))
    operator = _mapping(policy.get("operator"))
    return NetworkPolicy(
        enabled=bool(policy.get("enabled", True)),
        clients=tuple(clients),
        operator_namespace_selector=operator.get("namespaceSelector"),
        operator_pod_selector=operator.get("podSelector"),
    )


def _load_metrics(errors: _Collector, metrics: Mapping[str, Any]) -> Metrics:
    enabled = bool(metrics.get("enabled", False))
    image = metrics.get("image")
    port = metrics.get("port", 9121)
    if enabled and not image:
        errors.add("spec.metrics.image", "is required when spec.metrics.enabled is true; name a "
                   "redis_exporter image that your nodes can pull")
    if not isinstance(port, int) or not 1024 <= port <= 65535 or port in (6379, 16379):
        errors.add("spec.metrics.port", "must be an unprivileged port (1024-65535) other than "
                   "6379 and 16379")
    scrapers = tuple(dict(_mapping(peer)) for peer in metrics.get("scrapers") or ())
    for index, peer in enumerate(scrapers):
        if not peer.get("podSelector") and not peer.get("namespaceSelector"):
            errors.add(f"spec.metrics.scrapers[{index}]", "needs a podSelector, a "
                       "namespaceSelector or both; an empty entry would admit every pod")
    return Metrics(enabled=enabled, image=image, port=port, scrapers=scrapers)
