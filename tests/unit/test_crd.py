"""The SecureRedis CRD: structure, descriptions, defaults and enums agree with Python."""

from __future__ import annotations

import copy

import pytest
import yaml

from secureredis import API_VERSION, GROUP, KIND, PLURAL, VERSION, engines, spec
from spec_inputs import CRD_PATH, EXAMPLES, load_example, secure_redis, user


@pytest.fixture(scope="module")
def crd() -> dict:
    return yaml.safe_load(CRD_PATH.read_text())


@pytest.fixture(scope="module")
def version(crd) -> dict:
    return crd["spec"]["versions"][0]


@pytest.fixture(scope="module")
def root(version) -> dict:
    return version["schema"]["openAPIV3Schema"]


def properties_at(schema: dict, path: str) -> dict:
    """Return the schema at a dotted path such as ``spec.tls.issuer``, where ``[]`` enters items."""
    for part in path.split("."):
        if part == "[]":
            schema = schema["items"]
        else:
            schema = schema["properties"][part]
    return schema


def walk_properties(schema: dict, path: str = ""):
    """Yield (path, schema) for every named property at every depth."""
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child
        yield from walk_properties(child, child_path)
    if isinstance(schema.get("items"), dict):
        yield from walk_properties(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk_properties(schema["additionalProperties"], f"{path}{{}}")


def apply_defaults(value, schema: dict):
    """Fill in schema defaults the way the API server's structural defaulting does.

    A missing property with a default gets a copy of it, and defaulting then
    continues inside every object or list item that exists, including one that
    was just defaulted. Nothing is added to a missing property without a default.
    """
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(value[name], child)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = schema.get("properties", {})
            for name in value:
                if name not in known:
                    value[name] = apply_defaults(value[name], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(item, schema["items"]) for item in value]
    return value


def crd_defaulted(obj: dict, root_schema: dict) -> dict:
    return apply_defaults(copy.deepcopy(obj), root_schema)


# Objects whose Python defaults must equal what the API server would store.
DEFAULTING_CASES = {
    "minimal": secure_redis(),
    "replication": secure_redis({"mode": "replication"}),
    "cluster-empty": secure_redis({"mode": "cluster", "cluster": {}}),
    "users-and-refs": secure_redis({"acl": {"users": [
        user("app", "~a:*", "+get"),
        {"name": "ext", "rules": ["+get"], "passwordSecretRef": {"name": "ext-pw"}},
    ]}}),
    "cert-manager": secure_redis({"tls": {"issuer": "certManager",
                                          "issuerRef": {"name": "corp-ca"}}}),
    "partial-sections": secure_redis({
        "tls": {"clientAuth": "optional"},
        "storage": {"persistence": "rdb"},
        "metrics": {"enabled": True, "image": "exporter:1"},
        "networkPolicy": {"clients": [{"podSelector": {"matchLabels": {"a": "b"}}}]},
        "slowlog": {"maxLen": 10},
        "acl": {"rotation": {"interval": "720h"}},
    }),
}


def test_crd_identity(crd, version):
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["names"]["kind"] == KIND
    assert crd["spec"]["names"]["plural"] == PLURAL
    assert crd["spec"]["scope"] == "Namespaced"
    assert version["name"] == VERSION
    assert API_VERSION == f"{GROUP}/{VERSION}"


def test_one_served_storage_version(crd, version):
    assert len(crd["spec"]["versions"]) == 1
    assert version["served"] is True
    assert version["storage"] is True


def test_status_subresource(version):
    assert version["subresources"] == {"status": {}}


def test_every_property_described(root):
    exempt = {"metadata"}
    missing = []
    for path, schema in walk_properties(root):
        if path.split(".")[0] in exempt:
            continue
        if not str(schema.get("description", "")).strip():
            missing.append(path)

    assert missing == []


def test_walk_reaches_depth(root):
    paths = {path for path, _ in walk_properties(root)}

    assert "spec.acl.users[].passwordSecretRef.key" in paths
    assert "status.conditions[].lastTransitionTime" in paths


def test_printer_columns(version):
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}

    assert "Mode" in columns
    assert "Ready" in columns
    assert "Checks" in columns
    assert "TLS-Expiry" in columns
    assert columns["Mode"]["jsonPath"] == ".spec.mode"
    assert columns["TLS-Expiry"]["jsonPath"] == ".status.tls.notAfter"


def test_conditions_list_map(root):
    conditions = properties_at(root, "status.conditions")

    assert conditions["type"] == "array"
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_users_list_map(root):
    users = properties_at(root, "spec.acl.users")

    assert users["x-kubernetes-list-type"] == "map"
    assert users["x-kubernetes-list-map-keys"] == ["name"]


@pytest.mark.parametrize(("path", "expected"), [
    ("spec.mode", spec.MODES),
    ("spec.version", tuple(engines.ENGINES)),
    ("spec.storage.persistence", spec.PERSISTENCE),
    ("spec.tls.issuer", spec.ISSUERS),
    ("spec.tls.clientAuth", spec.CLIENT_AUTH),
    ("spec.tls.keyAlgorithm", spec.KEY_ALGORITHMS),
    ("spec.tls.protocols.[]", spec.TLS_PROTOCOLS),
    ("spec.memory.policy", spec.MAXMEMORY_POLICIES),
    ("spec.imagePullPolicy", spec.PULL_POLICIES),
])
def test_enum_matches_python(root, path, expected):
    assert set(properties_at(root, path)["enum"]) == set(expected)


def test_default_version_matches(root):
    assert properties_at(root, "spec.version")["default"] == engines.DEFAULT_ENGINE


def test_name_pattern_matches_python(root):
    pattern = properties_at(root, "spec.acl.users.[].name")["pattern"]

    assert pattern == spec.acl.USER_NAME_RE.pattern


def test_defaulting_fills_nested(root):
    defaulted = crd_defaulted(secure_redis(), root)

    assert defaulted["spec"]["tls"]["issuer"] == "operator"
    assert defaulted["spec"]["storage"]["persistence"] == "none"
    assert defaulted["spec"]["slowlog"]["maxLen"] == 128
    assert "replicas" not in defaulted["spec"]
    assert "cluster" not in defaulted["spec"]


def test_defaulting_enters_list_items(root):
    obj = DEFAULTING_CASES["users-and-refs"]

    users = crd_defaulted(obj, root)["spec"]["acl"]["users"]

    assert users[0]["enabled"] is True
    assert users[0]["admin"] is False
    assert users[1]["passwordSecretRef"]["key"] == "password"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_defaults_agree(root, path):
    obj = load_example(path)

    assert spec.load(obj) == spec.load(crd_defaulted(obj, root))


@pytest.mark.parametrize("case", list(DEFAULTING_CASES))
def test_python_defaults_agree(root, case):
    obj = DEFAULTING_CASES[case]

    assert spec.load(obj) == spec.load(crd_defaulted(obj, root))
