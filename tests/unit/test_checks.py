"""The hardening checks on hand-built facts: each passes, fails, or is unknown without facts."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

import pytest

from secureredis import acl, checks, engines, material, spec
from secureredis.checks import FAIL, PASS, UNKNOWN, KubeFacts, Known, RedisFacts
from secureredis.render import render_all

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
SHORT_PASSWORD = "Tiny-Secret-Value-7"
LONG_PASSWORD = "Long-Secret-Value-" + "q" * 30
DANGEROUS = ("flushall", "flushdb", "config|get", "config|set", "keys", "debug", "psync",
             "replconf", "info", "acl|setuser", "shutdown")
ACL_LIST = (
    "user app_service on #" + "a" * 64 + " ~app:* resetchannels +@all -@dangerous",
    "user cache_reader on #" + "b" * 64 + " ~cache:* resetchannels -@all +get +mget",
    "user default off resetchannels -@all",
    "user redis_admin on #" + "c" * 64 + " ~* &* +@all",
    "user secureredis-replication on #" + "d" * 64 + " resetchannels -@all +psync +replconf "
    "+ping",
)


def system_users() -> dict[str, tuple[str, ...]]:
    engine = engines.ENGINES[engines.DEFAULT_ENGINE]
    users = acl.system_users(engine.replication_commands,
                             engines.command_table(engines.DEFAULT_ENGINE))
    return checks.system_user_rules(users)


KNOWN = Known(
    admin_users=frozenset({"redis_admin"}),
    system_users=system_users(),
    passwords={"app_service": (LONG_PASSWORD,), "cache_reader": (LONG_PASSWORD,),
               "redis_admin": (LONG_PASSWORD,), "secureredis-replication": (LONG_PASSWORD,)},
    renames={"flushall": "", "flushdb": "", "shutdown": "", "config": "CONFIG_0123456789",
             "debug": "DEBUG_0123456789", "keys": "KEYS_0123456789"},
)


def verdicts(allowed: tuple[str, ...] = ()) -> dict[str, str]:
    """Return DRYRUN verdicts: disabled commands missing, ``allowed`` allowed, the rest denied."""
    table = {}
    for command in DANGEROUS:
        if KNOWN.renames.get(command.partition("|")[0]) == "":
            table[command] = checks.MISSING
        else:
            table[command] = checks.ALLOWED if command in allowed else checks.DENIED
    return table


def good_redis(**changes) -> RedisFacts:
    """Return facts of a server that passes every check that Redis facts decide."""
    facts = RedisFacts(
        config={
            "bind": "10.244.0.7 127.0.0.1 -::1", "protected-mode": "yes", "port": "0",
            "tls-port": "6379", "tls-auth-clients": "yes", "tls-protocols": "TLSv1.2 TLSv1.3",
            "tls-replication": "yes", "tls-cluster": "no", "cluster-enabled": "no",
            "maxmemory": "209715200", "acllog-max-len": "128", "enable-debug-command": "no",
        },
        info={"redis_version": "7.0.15", "maxmemory": "209715200"},
        acl_list=ACL_LIST,
        dangerous_commands=DANGEROUS,
        dangerous_verdicts={
            "app_service": verdicts(),
            "cache_reader": verdicts(),
            "redis_admin": verdicts(tuple(DANGEROUS)),
            "secureredis-replication": verdicts(("psync", "replconf")),
        },
        original_names_present={command: False for command in checks.CHECKLIST_COMMANDS},
        tls=True,
        tls_version="TLSv1.3",
        hostname_verified=True,
        client_certificate_required=True,
    )
    return replace(facts, **changes)


def good_kube(**changes) -> KubeFacts:
    facts = KubeFacts(
        statefulset_found=True,
        network_policy_found=True,
        network_policy_selects_pods=True,
        network_policy_types=("Ingress", "Egress"),
        open_ingress_rules=(),
        exposed_services=(),
        host_exposure=(),
        root_containers=(),
    )
    return replace(facts, **changes)


def with_config(**values: str) -> RedisFacts:
    config = dict(good_redis().config)
    config.update({name.replace("_", "-"): value for name, value in values.items()})
    return good_redis(config=config)


def with_verdicts(user: str, allowed: tuple[str, ...]) -> RedisFacts:
    table = dict(good_redis().dangerous_verdicts)
    table[user] = verdicts(allowed)
    return good_redis(dangerous_verdicts=table)


def outcome(check_id: str, redis: RedisFacts | None, kube: KubeFacts | None,
            known: Known = KNOWN) -> checks.CheckResult:
    return next(r for r in checks.run_checks(redis, kube, known) if r.id == check_id)


def test_checklist_order_and_ids():
    assert checks.CHECK_IDS == (
        "bind-not-wildcard", "protected-mode", "default-user-off", "least-privilege-users",
        "dangerous-blocked", "password-strength", "tls-enabled", "commands-renamed",
        "not-exposed", "non-root", "maxmemory-set", "acl-log-enabled",
    )


def test_good_facts_pass_every_check():
    results = checks.run_checks(good_redis(), good_kube(), KNOWN)

    assert [r.id for r in results] == list(checks.CHECK_IDS)
    assert {r.id: r.outcome for r in results} == {i: PASS for i in checks.CHECK_IDS}


def test_no_facts_all_unknown():
    results = checks.run_checks(None, None, Known())

    assert {r.outcome for r in results} == {UNKNOWN}
    assert checks.summary(results) == (0, 12, [])


def test_empty_redis_facts_all_unknown():
    results = checks.run_checks(RedisFacts(notes=("CONFIG is disabled",)), None, Known())

    assert {r.id: r.outcome for r in results} == {i: UNKNOWN for i in checks.CHECK_IDS}


@pytest.mark.parametrize("check_id", ["non-root", "not-exposed"])
def test_kube_only_checks_pass_without_redis(check_id):
    assert outcome(check_id, None, good_kube()).outcome == PASS


@pytest.mark.parametrize("check_id", [
    "bind-not-wildcard", "protected-mode", "default-user-off", "least-privilege-users",
    "dangerous-blocked", "password-strength", "tls-enabled", "commands-renamed", "maxmemory-set",
    "acl-log-enabled",
])
def test_redis_checks_unknown_without_redis(check_id):
    assert outcome(check_id, None, good_kube()).outcome == UNKNOWN


# (check id, facts from Redis, facts from Kubernetes) that must fail.
FAILING: dict[str, tuple[str, Callable[[], RedisFacts | None], Callable[[], KubeFacts | None]]] = {
    "bind-star": ("bind-not-wildcard", lambda: with_config(bind="* -::*"), good_kube),
    "bind-any-ipv4": ("bind-not-wildcard", lambda: with_config(bind="0.0.0.0"), good_kube),
    "bind-any-ipv6": ("bind-not-wildcard", lambda: with_config(bind="127.0.0.1 ::"), good_kube),
    "bind-empty": ("bind-not-wildcard", lambda: with_config(bind=""), good_kube),
    "protected-mode-no": ("protected-mode", lambda: with_config(protected_mode="no"), good_kube),
    "default-on": ("default-user-off", lambda: good_redis(acl_list=ACL_LIST[:2] + (
        "user default on #" + "e" * 64 + " resetchannels -@all +ping",) + ACL_LIST[3:]),
        good_kube),
    "app-every-command": ("least-privilege-users", lambda: good_redis(acl_list=(
        "user app_service on #" + "a" * 64 + " ~app:* +@all",)), good_kube),
    "app-every-command-selector": ("least-privilege-users", lambda: good_redis(acl_list=(
        "user app_service on #" + "a" * 64 + " ~app:* -@all +get (~tmp:* +@all)",)),
        good_kube),
    "app-dangerous": ("dangerous-blocked",
                      lambda: with_verdicts("app_service", ("config|get",)), good_kube),
    "system-beyond-role": ("dangerous-blocked", lambda: with_verdicts(
        "secureredis-replication", ("psync", "replconf", "keys")), good_kube),
    "nopass-user": ("password-strength", lambda: good_redis(acl_list=ACL_LIST + (
        "user guest on nopass ~guest:* -@all +get",)), good_kube),
    "plain-connection": ("tls-enabled", lambda: good_redis(tls=False, tls_version=None),
                         good_kube),
    "old-tls-session": ("tls-enabled", lambda: good_redis(tls_version="TLSv1.1"), good_kube),
    "plaintext-port": ("tls-enabled", lambda: with_config(port="6379"), good_kube),
    "old-tls-allowed": ("tls-enabled",
                        lambda: with_config(tls_protocols="TLSv1.1 TLSv1.2"), good_kube),
    "client-cert-optional": ("tls-enabled",
                             lambda: with_config(tls_auth_clients="optional"), good_kube),
    "client-cert-not-required": ("tls-enabled", lambda: good_redis(
        client_certificate_required=False), good_kube),
    "replication-plain": ("tls-enabled", lambda: with_config(tls_replication="no"), good_kube),
    "cluster-bus-plain": ("tls-enabled", lambda: with_config(cluster_enabled="yes"), good_kube),
    "flushall-present": ("commands-renamed", lambda: good_redis(original_names_present={
        **good_redis().original_names_present, "flushall": True}), good_kube),
    "debug-present-local": ("commands-renamed", lambda: replace(
        with_config(enable_debug_command="local"), original_names_present={
            **good_redis().original_names_present, "debug": True}), good_kube),
    "node-port": ("not-exposed", good_redis,
                  lambda: good_kube(exposed_services=("Service cache has type NodePort",))),
    "host-port": ("not-exposed", good_redis,
                  lambda: good_kube(host_exposure=("container redis maps hostPort 6379",))),
    "no-network-policy": ("not-exposed", good_redis,
                          lambda: good_kube(network_policy_found=False)),
    "policy-misses-pods": ("not-exposed", good_redis,
                           lambda: good_kube(network_policy_selects_pods=False)),
    "policy-no-egress": ("not-exposed", good_redis,
                         lambda: good_kube(network_policy_types=("Ingress",))),
    "policy-open-ingress": ("not-exposed", good_redis, lambda: good_kube(
        open_ingress_rules=("ingress rule 0 admits every source",))),
    "public-bind": ("not-exposed", lambda: with_config(bind="8.8.8.8 127.0.0.1"), good_kube),
    "root-container": ("non-root", good_redis,
                       lambda: good_kube(root_containers=("container redis has runAsUser 0",))),
    "maxmemory-zero": ("maxmemory-set", lambda: with_config(maxmemory="0"), good_kube),
    "acl-log-zero": ("acl-log-enabled", lambda: with_config(acllog_max_len="0"), good_kube),
}


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_check_fails(case):
    check_id, redis, kube = case

    result = outcome(check_id, redis(), kube())

    assert result.outcome == FAIL, result.message
    assert result.fix


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_failure_fails_only_its_check(case):
    check_id, redis, kube = case

    _, _, failed = checks.summary(checks.run_checks(redis(), kube(), KNOWN))

    assert failed == [check_id]


def test_short_password_fails():
    known = replace(KNOWN, passwords={**KNOWN.passwords, "app_service": (LONG_PASSWORD,
                                                                         SHORT_PASSWORD)})

    result = outcome("password-strength", good_redis(), good_kube(), known)

    assert result.outcome == FAIL
    assert "app_service" in result.message


def test_password_never_in_results():
    known = replace(KNOWN, passwords={"app_service": (SHORT_PASSWORD,),
                                      "redis_admin": (LONG_PASSWORD,)})
    facts = good_redis(acl_list=ACL_LIST + ("user guest on nopass -@all",))

    results = checks.run_checks(facts, good_kube(), known)

    for result in results:
        for text in (result.title, result.reason, result.message, result.fix):
            assert SHORT_PASSWORD not in text, result.id
            assert LONG_PASSWORD not in text, result.id


def test_known_repr_hides_passwords():
    text = repr(replace(KNOWN, passwords={"app_service": (SHORT_PASSWORD,)}))

    assert SHORT_PASSWORD not in text


def test_password_length_unknown_for_unmanaged_user():
    known = replace(KNOWN, passwords={"redis_admin": (LONG_PASSWORD,)})

    result = outcome("password-strength", good_redis(), good_kube(), known)

    assert result.outcome == UNKNOWN
    assert "app_service" in result.message


def test_password_nopass_fails_without_acl_passwords():
    facts = good_redis(acl_list=("user default on nopass ~* &* +@all",))

    result = outcome("password-strength", facts, None, Known())

    assert result.outcome == FAIL
    assert "default" in result.message


def test_default_off_with_nopass_passes_with_note():
    facts = good_redis(acl_list=("user default off nopass resetchannels -@all",))

    result = outcome("default-user-off", facts, None)

    assert result.outcome == PASS
    assert "nopass" in result.message


def test_default_user_not_listed_unknown():
    facts = good_redis(acl_list=ACL_LIST[:2])

    assert outcome("default-user-off", facts, None).outcome == UNKNOWN


def test_admin_may_run_every_command():
    facts = good_redis(acl_list=("user redis_admin on #" + "c" * 64 + " ~* &* +@all",))

    assert outcome("least-privilege-users", facts, None).outcome == PASS
    assert outcome("least-privilege-users", facts, None, Known()).outcome == FAIL


def test_system_user_within_role_passes():
    facts = with_verdicts("secureredis-operator", ("config|get", "config|set", "acl|setuser",
                                                   "info"))

    assert outcome("dangerous-blocked", facts, None).outcome == PASS


def test_system_user_selector_grant_passes():
    # The operator user gets MIGRATE and RESTORE-ASKING only inside a selector.
    table = dict(good_redis().dangerous_verdicts)
    table["secureredis-operator"] = {**verdicts(), "migrate": checks.ALLOWED,
                                     "restore-asking": checks.ALLOWED}
    facts = good_redis(dangerous_commands=DANGEROUS + ("migrate", "restore-asking"),
                       dangerous_verdicts=table)

    assert outcome("dangerous-blocked", facts, None).outcome == PASS


def test_dangerous_missing_renamed_unknown():
    # KEYS is renamed to a name the caller did not give, so DRYRUN cannot
    # find it. Disabled commands (FLUSHALL) are missing too, but known to be.
    table = dict(good_redis().dangerous_verdicts)
    table["app_service"] = {**verdicts(), "keys": checks.MISSING}
    facts = good_redis(dangerous_verdicts=table)

    result = outcome("dangerous-blocked", facts, None)

    assert result.outcome == UNKNOWN
    assert "keys" in result.message
    assert "flushall" not in result.message


def test_dangerous_failure_beats_unknown():
    table = dict(good_redis().dangerous_verdicts)
    table["app_service"] = {**verdicts(("info",)), "keys": checks.ERROR}

    result = outcome("dangerous-blocked", good_redis(dangerous_verdicts=table), None)

    assert result.outcome == FAIL
    assert "app_service (info)" in result.message


def test_tls_unknown_without_config():
    facts = good_redis(config=None)

    result = outcome("tls-enabled", facts, None)

    assert result.outcome == UNKNOWN
    assert "plaintext port" in result.message


def test_tls_plain_connection_fails_without_config():
    assert outcome("tls-enabled", good_redis(config=None, tls=False, tls_version=None),
                   None).outcome == FAIL


def test_tls_probe_enough_without_auth_clients():
    config = {k: v for k, v in good_redis().config.items() if k != "tls-auth-clients"}

    assert outcome("tls-enabled", good_redis(config=config), None).outcome == PASS


def test_tls_skip_hostname_noted():
    result = outcome("tls-enabled", good_redis(hostname_verified=False), None)

    assert result.outcome == PASS
    assert "host name was not checked" in result.message


def test_debug_blocked_by_setting_counts_disabled():
    present = {**good_redis().original_names_present, "debug": True}

    result = outcome("commands-renamed", good_redis(original_names_present=present), None)

    assert result.outcome == PASS


def test_commands_unknown_when_lookup_missing():
    present = {c: False for c in checks.CHECKLIST_COMMANDS if c != "shutdown"}

    result = outcome("commands-renamed", good_redis(original_names_present=present), None)

    assert result.outcome == UNKNOWN
    assert "SHUTDOWN" in result.message


def test_maxmemory_from_info_without_config():
    assert outcome("maxmemory-set", good_redis(config=None), None).outcome == PASS
    assert outcome("maxmemory-set", good_redis(config=None, info={"maxmemory": "0"}),
                   None).outcome == FAIL


@pytest.mark.parametrize("bind, expected", [
    ("127.0.0.1 -::1", PASS),
    ("10.244.0.7 127.0.0.1", UNKNOWN),
    ("* -::*", UNKNOWN),
    ("203.0.113.9", UNKNOWN),
    ("8.8.8.8", FAIL),
])
def test_not_exposed_from_bind_only(bind, expected):
    # 203.0.113.0/24 is a documentation range, not reachable on the internet.
    assert outcome("not-exposed", with_config(bind=bind), None).outcome == expected


def test_summary_counts():
    results = checks.run_checks(with_config(maxmemory="0"), None, KNOWN)

    passed, total, failed = checks.summary(results)

    assert total == 12
    assert failed == ["maxmemory-set"]
    assert passed == sum(1 for r in results if r.outcome == PASS)


def test_parse_acl_line_with_selector():
    user = checks.parse_acl_line(
        "user app2 on #" + "a" * 64 + " ~app:* resetchannels +@all -@dangerous +config|get "
        "(~x:* resetchannels -@all +keys)")

    assert user.name == "app2"
    assert user.enabled is True
    assert user.nopass is False
    assert user.password_count == 1
    assert user.command_rules == ("+@all", "-@dangerous", "+config|get")
    assert user.selectors == (("-@all", "+keys"),)


@pytest.mark.parametrize("line", ["", "default on", "user", "user x (unclosed"])
def test_parse_acl_line_rejects_other_lines(line):
    assert checks.parse_acl_line(line) is None


@pytest.mark.parametrize("rules, command, expected", [
    ("-@all +acl|cat", "acl|cat", True),
    ("-@all +acl", "acl|dryrun", True),
    ("-@all +acl -acl|dryrun", "acl|dryrun", False),
    ("-@all +ping", "command|info", False),
    ("+@all", "command|info", True),
    ("+@all -@dangerous", "acl|dryrun", None),
    ("+@all -@dangerous +acl|dryrun", "acl|dryrun", True),
    ("-@all +ping (+command|info)", "command|info", True),
])
def test_user_may_run(rules, command, expected):
    user = checks.parse_acl_line(f"user u on {rules}")

    assert checks.user_may_run(user, command) is expected


# --- kube_facts from rendered objects -------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    sr = spec.load({"apiVersion": "secureredis.io/v1alpha1", "kind": "SecureRedis",
                    "metadata": {"name": "cache", "namespace": "apps"},
                    "spec": {"acl": {"users": [{"name": "reader", "rules": ["~c:*", "+get"]}]}}})
    children: dict[str, list[dict]] = {}
    for child in render_all(sr, material.ensure(sr, None, now=NOW)):
        children.setdefault(child["kind"], []).append(child)
    return children


def facts_from(rendered, change: Callable[[dict, dict, list[dict]], None] | None = None):
    """Build KubeFacts from copies of the rendered objects after ``change`` edits them."""
    statefulset = copy.deepcopy(rendered["StatefulSet"][0])
    policy = copy.deepcopy(rendered["NetworkPolicy"][0])
    services = copy.deepcopy(rendered["Service"])
    if change:
        change(statefulset, policy, services)
    return checks.kube_facts(statefulset, policy, services)


def test_rendered_objects_pass(rendered):
    kube = facts_from(rendered)

    assert kube.root_containers == ()
    assert kube.network_policy_selects_pods is True
    assert outcome("not-exposed", None, kube).outcome == PASS
    assert outcome("non-root", None, kube).outcome == PASS


def pod_spec(statefulset: dict) -> dict:
    return statefulset["spec"]["template"]["spec"]


def make_node_port(sts, policy, services):
    services[0]["spec"]["type"] = "NodePort"


def make_load_balancer(sts, policy, services):
    services[0]["spec"]["type"] = "LoadBalancer"


def add_external_ip(sts, policy, services):
    services[0]["spec"]["externalIPs"] = ["192.0.2.10"]


def add_host_port(sts, policy, services):
    pod_spec(sts)["containers"][0]["ports"][0]["hostPort"] = 6379


def use_host_network(sts, policy, services):
    pod_spec(sts)["hostNetwork"] = True


def select_other_pods(sts, policy, services):
    policy["spec"]["podSelector"] = {"matchLabels": {"app": "other"}}


def drop_egress_type(sts, policy, services):
    policy["spec"]["policyTypes"] = ["Ingress"]


def open_ingress(sts, policy, services):
    policy["spec"]["ingress"].append({"ports": [{"port": 6379}]})


def open_ingress_cidr(sts, policy, services):
    policy["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})


def policy_elsewhere(sts, policy, services):
    policy["metadata"]["namespace"] = "other"


@pytest.mark.parametrize("change", [
    make_node_port, make_load_balancer, add_external_ip, add_host_port, use_host_network,
    select_other_pods, drop_egress_type, open_ingress, open_ingress_cidr, policy_elsewhere,
])
def test_kube_exposure_fails(rendered, change):
    assert outcome("not-exposed", None, facts_from(rendered, change)).outcome == FAIL


def test_node_port_for_other_pods_ignored(rendered):
    def add_unrelated(sts, policy, services):
        services.append({"metadata": {"name": "web"},
                         "spec": {"type": "NodePort", "selector": {"app": "web"}}})

    kube = facts_from(rendered, add_unrelated)

    assert kube.exposed_services == ()


def test_missing_network_policy_fails(rendered):
    kube = checks.kube_facts(rendered["StatefulSet"][0], None, rendered["Service"])

    assert outcome("not-exposed", None, kube).outcome == FAIL


def run_as_root(sts, policy, services):
    pod_spec(sts)["containers"][0]["securityContext"]["runAsUser"] = 0


def allow_root(sts, policy, services):
    pod_spec(sts)["securityContext"].pop("runAsNonRoot")
    pod_spec(sts)["containers"][0]["securityContext"].pop("runAsNonRoot")


def leave_uid_to_image(sts, policy, services):
    pod_spec(sts)["securityContext"].pop("runAsUser")
    pod_spec(sts)["containers"][0]["securityContext"].pop("runAsUser")


def root_init_container(sts, policy, services):
    pod_spec(sts)["initContainers"] = [{"name": "setup", "securityContext": {"runAsUser": 0}}]


@pytest.mark.parametrize("change", [run_as_root, allow_root, leave_uid_to_image,
                                    root_init_container])
def test_kube_root_fails(rendered, change):
    result = outcome("non-root", None, facts_from(rendered, change))

    assert result.outcome == FAIL
    assert "container" in result.message


def test_pod_level_context_applies_to_containers(rendered):
    def container_context_only_drops_caps(sts, policy, services):
        pod_spec(sts)["containers"][0]["securityContext"] = {"capabilities": {"drop": ["ALL"]}}

    kube = facts_from(rendered, container_context_only_drops_caps)

    assert outcome("non-root", None, kube).outcome == PASS


def test_no_statefulset_non_root_unknown(rendered):
    kube = checks.kube_facts(None, rendered["NetworkPolicy"][0], rendered["Service"])

    assert kube.network_policy_selects_pods is None
    assert outcome("non-root", None, kube).outcome == UNKNOWN


@pytest.mark.parametrize("selector, labels, expected", [
    ({}, {"a": "1"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"},
     True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"},
     False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
])
def test_selector_matches(selector, labels, expected):
    assert checks.selector_matches(selector, labels) is expected


def test_system_user_rules_merge_versions():
    merged = checks.system_user_rules([
        acl.SystemUser("replication", "secureredis-replication", ("+psync", "+ping")),
        acl.SystemUser("replication", "secureredis-replication", ("+psync", "+sync")),
    ])

    assert merged == {"secureredis-replication": ("+psync", "+ping", "+sync")}
