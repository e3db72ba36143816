"""Invalid SecureRedis objects: rejected at admission, or Stalled with the field named.

The CRD's schema and CEL rules reject what they can express; the operator
stalls the rest with a condition and an Event, and creates nothing for it.
"""

from __future__ import annotations

import json

import pytest

from secureredis import names
from support.cluster import ClusterError
from support.operator import condition, events, get, secure_redis, wait_for_condition

pytestmark = pytest.mark.integration

NAME = "bad"

# (id, spec, field path the API server names)
REJECTED_AT_ADMISSION = [
    ("standalone-replicas", {"mode": "standalone", "replicas": 3}, "spec.replicas"),
    ("cluster-two-shards", {"mode": "cluster", "cluster": {"shards": 2}}, "spec.cluster.shards"),
    ("tls-1-1", {"tls": {"protocols": ["TLSv1.1"]}}, "spec.tls.protocols"),
    ("password-rule", {"acl": {"users": [{"name": "app", "rules": ["~app:*", ">not-in-a-spec"]}]}},
     "spec.acl.users[0].rules[1]"),
    ("nopass-rule", {"acl": {"users": [{"name": "app", "rules": ["nopass", "+get"]}]}},
     "spec.acl.users[0].rules[0]"),
    ("config-disabled", {"commands": {"rename": {"config": ""}}}, "spec.commands.rename"),
    ("default-user", {"acl": {"users": [{"name": "default", "rules": ["+get"]}]}},
     "spec.acl.users[0].name"),
    ("unknown-mode", {"mode": "sentinel"}, "spec.mode"),
    ("no-memory-limit", {"resources": {"requests": {"memory": "64Mi"}}}, "spec.memory.maxmemory"),
    ("certmanager-without-ref", {"tls": {"issuer": "certManager"}}, "spec.tls.issuerRef"),
    ("bad-duration", {"tls": {"renewBefore": "thirty days"}}, "spec.tls.renewBefore"),
    ("metrics-without-image", {"metrics": {"enabled": True}}, "spec.metrics.image"),
    ("grace-too-short", {"acl": {"rotation": {"gracePeriod": "90s"}}},
     "spec.acl.rotation.gracePeriod"),
]

# (id, spec, field path the Stalled condition names)
STALLED_BY_OPERATOR = [
    ("unknown-command", {"acl": {"users": [{"name": "app", "rules": ["+flushal"]}]}},
     "spec.acl.users[0].rules[0]"),
    ("dangerous-for-non-admin", {"acl": {"users": [{"name": "app", "rules": ["~*", "+keys"]}]}},
     "spec.acl.users[0].rules[1]"),
    ("unknown-category", {"acl": {"users": [{"name": "app", "rules": ["+@nosuch"]}]}},
     "spec.acl.users[0].rules[0]"),
    ("redis-8-command-on-7", {"version": "redis-7.0",
                              "acl": {"users": [{"name": "app", "rules": ["+hgetex"]}]}},
     "spec.acl.users[0].rules[0]"),
    ("rename-to-existing", {"commands": {"rename": {"keys": "flushall"}}},
     "spec.commands.rename[keys]"),
    ("renew-after-expiry", {"tls": {"certificateDuration": "24h", "renewBefore": "48h"}},
     "spec.tls.renewBefore"),
    ("user-name-collision", {"acl": {"users": [{"name": "a_b", "rules": ["+get"]},
                                               {"name": "a-b", "rules": ["+get"]}]}},
     "spec.acl.users[1].name"),
    ("maxmemory-over-limit", {"memory": {"maxmemory": "2Gi"}}, "spec.memory.maxmemory"),
    ("missing-password-secret", {"acl": {"users": [
        {"name": "app", "rules": ["+get"], "passwordSecretRef": {"name": "absent"}}]}},
     "spec.acl.users[0].passwordSecretRef"),
    ("grace-longer-than-interval", {"acl": {"rotation": {"interval": "2h", "gracePeriod": "3h"}}},
     "spec.acl.rotation.gracePeriod"),
    ("empty-client-selector", {"networkPolicy": {"clients": [{"podSelector": {}}]}},
     "spec.networkPolicy.clients[0]"),
    ("issuer-not-supported", {"tls": {"issuer": "certManager", "issuerRef": {"name": "ca"}}},
     "spec.tls.issuer"),
]


@pytest.mark.parametrize(("spec", "field"), [(s, f) for _, s, f in REJECTED_AT_ADMISSION],
                         ids=[i for i, _, _ in REJECTED_AT_ADMISSION])
def test_rejected_at_admission(control_plane, crd, namespace, spec, field):
    with pytest.raises(ClusterError) as rejection:
        control_plane.apply(secure_redis(NAME, spec), namespace=namespace)

    assert field in str(rejection.value)
    assert get(control_plane, namespace, "secureredis", NAME) is None


def test_admission_error_hides_password(control_plane, crd, namespace):
    spec = {"acl": {"users": [{"name": "app", "rules": [">hunter2-not-a-real-password"]}]}}
    with pytest.raises(ClusterError) as rejection:
        control_plane.apply(secure_redis(NAME, spec), namespace=namespace)

    assert "hunter2" not in str(rejection.value)


@pytest.mark.parametrize(("spec", "field"), [(s, f) for _, s, f in STALLED_BY_OPERATOR],
                         ids=[i for i, _, _ in STALLED_BY_OPERATOR])
def test_stalled_by_operator(control_plane, namespace, operator, spec, field):
    control_plane.apply(secure_redis(NAME, spec), namespace=namespace)
    obj = wait_for_condition(control_plane, namespace, NAME, "Stalled", "True")

    stalled = condition(obj, "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert field in stalled["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Reconciling")["status"] == "False"
    warnings = events(control_plane, namespace, "InvalidSpec")
    assert any(field in e["message"] for e in warnings)
    assert get(control_plane, namespace, "configmap", names.config_map(NAME)) is None
    assert get(control_plane, namespace, "secret", names.ca_secret(NAME)) is None


def test_fixed_spec_recovers(control_plane, namespace, operator):
    bad = {"acl": {"users": [{"name": "app", "rules": ["+flushal"]}]}}
    control_plane.apply(secure_redis(NAME, bad), namespace=namespace)
    wait_for_condition(control_plane, namespace, NAME, "Stalled", "True")

    patch = json.dumps({"spec": {"acl": {"users": [{"name": "app", "rules": ["+get"]}]}}})
    control_plane.kubectl("-n", namespace, "patch", "secureredis", NAME, "--type=merge", "-p",
                          patch)
    obj = wait_for_condition(control_plane, namespace, NAME, "Stalled", "False")

    assert condition(obj, "Reconciling")["status"] == "True"
    assert get(control_plane, namespace, "configmap", names.config_map(NAME)) is not None
