"""The operator against a real API server: children, idempotence, drift and deletion.

Pods stay Pending on the control-plane tier (no kubelet runs them), so these
tests cover everything up to the pods: the objects the operator writes, the
writes it does not make, and how it repairs what others change.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import yaml

from secureredis import names, objects
from support.cluster import wait_until
from support.operator import (REPO, condition, events, get, secure_redis, wait_for_condition,
                              wait_seconds)

pytestmark = pytest.mark.integration

NAME = "cache"
EXAMPLE = yaml.safe_load((REPO / "manifests/examples/standalone.yaml").read_text())
USERS = [user["name"] for user in EXAMPLE["spec"]["acl"]["users"]]

CHILDREN = [
    ("configmap", names.config_map(NAME)),
    ("configmap", names.acl_config_map(NAME)),
    ("secret", names.ca_secret(NAME)),
    ("secret", names.tls_secret(NAME)),
    ("secret", names.system_secret(NAME)),
    *[("secret", names.user_secret(NAME, user)) for user in USERS],
    ("service", names.client_service(NAME)),
    ("service", names.headless_service(NAME)),
    ("statefulset", names.statefulset(NAME)),
    ("networkpolicy", names.network_policy(NAME)),
    ("poddisruptionbudget", names.pdb(NAME)),
]
# Objects no other controller writes to: their resourceVersion moves only
# when the operator writes. The StatefulSet and the PDB get status updates
# from their controllers, so for them the operator's managedFields entry is
# compared instead.
CONTROLLER_FREE_KINDS = ("configmap", "secret", "service", "networkpolicy")


def deploy(cluster, namespace) -> dict:
    cluster.apply(secure_redis(NAME, EXAMPLE["spec"]), namespace=namespace)
    return wait_for_condition(cluster, namespace, NAME, "Stalled", "False")


def all_children_exist(cluster, namespace) -> bool:
    return all(get(cluster, namespace, kind, name) for kind, name in CHILDREN)


def secret_digest(cluster, namespace, name) -> str:
    """Return a digest of a Secret's data, so tests compare contents without showing them."""
    data = get(cluster, namespace, "secret", name)["data"]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def operator_managed_time(obj: dict) -> str | None:
    for entry in obj["metadata"].get("managedFields", []):
        if entry.get("manager") == "secure-redis-operator" and entry.get("operation") == "Apply":
            return entry.get("time")
    return None


def test_children_created_with_owner(control_plane, namespace, operator):
    owner = deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")

    for kind, name in CHILDREN:
        child = get(control_plane, namespace, kind, name)
        references = child["metadata"].get("ownerReferences", [])
        assert len(references) == 1, f"{kind}/{name} owner references"
        assert references[0]["uid"] == owner["metadata"]["uid"], f"{kind}/{name} owner uid"
        assert references[0]["controller"] is True, f"{kind}/{name} controller flag"
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME


def test_children_content(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")

    config = get(control_plane, namespace, "configmap", names.config_map(NAME))["data"]["redis.conf"]
    assert "\nport 0\n" in config
    assert "\ntls-port 6379\n" in config
    assert '\ntls-protocols "TLSv1.2 TLSv1.3"\n' in config
    acl_text = get(control_plane, namespace, "configmap", names.acl_config_map(NAME))["data"]["users.acl"]
    assert acl_text.startswith("user default off resetpass")
    assert "nopass" not in acl_text

    user_secret = get(control_plane, namespace, "secret", names.user_secret(NAME, "cache_reader"))
    keys = set(user_secret["data"])
    assert {"username", "password", "ca.crt", "tls.crt", "tls.key", "url"} <= keys
    username = base64.b64decode(user_secret["data"]["username"]).decode()
    assert username == "cache_reader"

    statefulset = get(control_plane, namespace, "statefulset", names.statefulset(NAME))
    pod_security = statefulset["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"

    policy = get(control_plane, namespace, "networkpolicy", names.network_policy(NAME))
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_status_reports_progress(control_plane, namespace, operator):
    obj = deploy(control_plane, namespace)

    assert condition(obj, "Reconciling")["status"] == "True"
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Ready")["reason"] == "PodsNotReady"
    assert condition(obj, "TLSReady")["status"] == "True"
    assert condition(obj, "CredentialsReady")["status"] == "True"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["checks"]["total"] == 12
    assert obj["status"]["checks"]["failed"] == []
    assert [u["secretName"] for u in obj["status"]["users"]] == [
        names.user_secret(NAME, user) for user in USERS]


def test_resyncs_make_no_writes(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    wait_seconds(3 * operator.resync_seconds)

    def snapshot() -> dict:
        state = {}
        for kind, name in CHILDREN:
            child = get(control_plane, namespace, kind, name)
            if kind in CONTROLLER_FREE_KINDS:
                state[f"{kind}/{name}"] = child["metadata"]["resourceVersion"]
            else:
                state[f"{kind}/{name}"] = operator_managed_time(child)
        owner = get(control_plane, namespace, "secureredis", NAME)
        state["secureredis"] = owner["metadata"]["resourceVersion"]
        return state

    before = snapshot()
    resyncs_before = operator.count("resync finished")
    wait_seconds(11 * operator.resync_seconds)
    after = snapshot()

    assert operator.count("resync finished") - resyncs_before >= 10
    assert after == before
    assert operator.count("updated child") == 0
    assert operator.count("restored drifted child") == 0


def test_restart_regenerates_nothing(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    secrets = [name for kind, name in CHILDREN if kind == "secret"]
    before = {name: secret_digest(control_plane, namespace, name) for name in secrets}

    resyncs = operator.count("resync finished")
    operator.kill()
    operator.start()
    wait_until(lambda: operator.count("resync finished") >= resyncs + 2, 60,
               message="two resyncs after the restart")

    after = {name: secret_digest(control_plane, namespace, name) for name in secrets}
    assert after == before


def test_deleted_network_policy_restored(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    original = get(control_plane, namespace, "networkpolicy", NAME)

    control_plane.kubectl("-n", namespace, "delete", "networkpolicy", NAME)
    wait_until(lambda: get(control_plane, namespace, "networkpolicy", NAME) is not None, 30,
               message="NetworkPolicy re-created")

    restored = get(control_plane, namespace, "networkpolicy", NAME)
    assert restored["spec"] == original["spec"]
    wait_until(lambda: events(control_plane, namespace, "ChildRecreated"), 15,
               message="a ChildRecreated Event")


def test_edited_config_map_restored(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    config_name = names.config_map(NAME)
    original = get(control_plane, namespace, "configmap", config_name)["data"]["redis.conf"]

    patch = json.dumps({"data": {"redis.conf": "port 6379\nprotected-mode no\n"}})
    control_plane.kubectl("-n", namespace, "patch", "configmap", config_name, "--type=merge",
                          "-p", patch)
    wait_until(lambda: get(control_plane, namespace, "configmap", config_name)["data"]
               ["redis.conf"] == original, 30, message="redis.conf restored")

    wait_until(lambda: events(control_plane, namespace, "ChildRestored"), 15,
               message="a ChildRestored Event")
    restored_hash = objects.applied_hash(get(control_plane, namespace, "configmap", config_name))
    assert restored_hash is not None


def test_deleted_user_secret_restored(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    secret_name = names.user_secret(NAME, "app_service")
    before = secret_digest(control_plane, namespace, secret_name)

    control_plane.kubectl("-n", namespace, "delete", "secret", secret_name)
    wait_until(lambda: get(control_plane, namespace, "secret", secret_name) is not None, 30,
               message="user Secret re-created")

    assert secret_digest(control_plane, namespace, secret_name) == before


def test_deleted_state_secret_keeps_material(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    tls_before = secret_digest(control_plane, namespace, names.tls_secret(NAME))
    ca_before = secret_digest(control_plane, namespace, names.ca_secret(NAME))

    control_plane.kubectl("-n", namespace, "delete", "secret", names.ca_secret(NAME))
    wait_until(lambda: get(control_plane, namespace, "secret", names.ca_secret(NAME)), 30,
               message="CA Secret re-created")

    assert secret_digest(control_plane, namespace, names.ca_secret(NAME)) == ca_before
    assert secret_digest(control_plane, namespace, names.tls_secret(NAME)) == tls_before
    assert events(control_plane, namespace, "MaterialLost") == []


def test_spec_edit_keeps_material(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    ca_before = get(control_plane, namespace, "secret", names.ca_secret(NAME))["data"]
    reader_before = secret_digest(control_plane, namespace, names.user_secret(NAME, "cache_reader"))

    spec = json.loads(json.dumps(EXAMPLE["spec"]))
    spec["slowlog"] = {"maxLen": 256}
    spec["acl"]["users"].append({"name": "late_user", "rules": ["~late:*", "+get"]})
    control_plane.apply(secure_redis(NAME, spec), namespace=namespace)
    late_secret = names.user_secret(NAME, "late_user")
    wait_until(lambda: get(control_plane, namespace, "secret", late_secret), 30,
               message="the new user's Secret")

    config = get(control_plane, namespace, "configmap", names.config_map(NAME))["data"]["redis.conf"]
    assert "\nslowlog-max-len 256\n" in config
    assert secret_digest(control_plane, namespace, names.user_secret(NAME, "cache_reader")) == \
        reader_before
    # The CA Secret also holds a copy of all material, so it changes when a
    # user is added; the CA certificate and key must not.
    ca_after = get(control_plane, namespace, "secret", names.ca_secret(NAME))["data"]
    assert ca_after["ca.crt"] == ca_before["ca.crt"]
    assert ca_after["ca.key"] == ca_before["ca.key"]


def test_delete_removes_children(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")

    control_plane.kubectl("-n", namespace, "delete", "secureredis", NAME, "--wait=true",
                          timeout=60)

    def all_gone() -> bool:
        return not any(get(control_plane, namespace, kind, name) for kind, name in CHILDREN)

    wait_until(all_gone, 60, message="children garbage-collected")


def test_delete_without_operator(control_plane, namespace, operator):
    deploy(control_plane, namespace)
    wait_until(lambda: all_children_exist(control_plane, namespace), 30, message="children")
    owner = get(control_plane, namespace, "secureredis", NAME)
    operator.stop()

    # No finalizer: a SecureRedis goes away even when no operator runs.
    assert owner["metadata"].get("finalizers", []) == []
    control_plane.kubectl("-n", namespace, "delete", "secureredis", NAME, "--wait=true",
                          "--timeout=30s", timeout=60)
    assert get(control_plane, namespace, "secureredis", NAME) is None
