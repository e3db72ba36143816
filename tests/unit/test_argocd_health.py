"""docs/argocd-health.lua, run with lua5.4 on status objects from the real reconcile code.

Each status below comes from ``reconcile.compute_status`` or
``reconcile.stall``, fed with a SecureRedis loaded by ``spec.load``,
material from ``material.ensure`` and StatefulSets in the shapes the API
server returns, so the script is tested against what the operator writes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from secureredis import checks, material, names, reconcile, spec
from secureredis.render import RenderContext, render_all
from spec_inputs import EXAMPLES, NOW, load_example

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "argocd-health.lua"
LUA = shutil.which("lua5.4")

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 is missing; hack/redis-deps.sh "
                                                    "installs it")

# Loads the script the way Argo CD does: as a chunk that reads the global
# ``obj`` and returns a table with status and message.
DRIVER = """
local chunk = assert(loadfile(...))
local health = chunk()
io.write(tostring(health.status), "\\n", tostring(health.message))
"""


def lua_literal(value) -> str:
    """Return ``value`` (JSON-like data) as a Lua expression."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\'
                          else "".join(f"\\{byte}" for byte in ch.encode()) for ch in value)
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(key))}] = {lua_literal(item)}"
                               for key, item in value.items()) + "}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


def health(obj: dict, tmp_path: Path) -> tuple[str, str]:
    """Run the health script on ``obj`` and return (status, message)."""
    driver = tmp_path / "driver.lua"
    driver.write_text(f"obj = {lua_literal(obj)}\n{DRIVER}")
    result = subprocess.run([LUA, str(driver), str(SCRIPT)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\n")
    return status, message


# --- Status objects from the reconcile code ----------------------------------------------

class RecordingKube:
    """The two Kube calls ``reconcile.stall`` makes, recorded instead of sent."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.statuses: list[dict] = []

    def event(self, ref, event_type, reason, message, now=None):
        self.events.append((event_type, reason))

    def patch_status(self, namespace, name, status):
        self.statuses.append(status)
        return None


def example_body(generation: int = 1) -> dict:
    body = load_example(next(path for path in EXAMPLES if path.stem == "standalone"))
    body["metadata"].update(namespace="apps", uid="uid-1", generation=generation)
    return body


SR = spec.load(example_body())
MATERIAL = material.ensure(SR, None, now=NOW)
CHILDREN = render_all(SR, MATERIAL, RenderContext())


def statefulset(ready: int) -> dict:
    """Return the rendered StatefulSet as the API server reports it with ``ready`` pods."""
    rendered = next(child for child in CHILDREN if child["kind"] == "StatefulSet")
    return {**rendered,
            "metadata": {**rendered["metadata"], "generation": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": ready,
                       "updatedReplicas": ready}}


def passing_facts() -> checks.RedisFacts:
    """Return facts of a live server that runs the rendered configuration and ACL file."""
    acl_file = next(child for child in CHILDREN
                    if child["metadata"]["name"] == names.acl_config_map(SR.name))
    acl_list = tuple(line for line in acl_file["data"]["users.acl"].splitlines()
                     if line.startswith("user "))
    dangerous = ("flushall", "flushdb", "config|get", "config|set", "keys", "debug", "shutdown")
    disabled = {command for command, new_name in MATERIAL.renames.items() if new_name == ""}
    verdicts = {command: checks.MISSING if command.partition("|")[0] in disabled
                else checks.DENIED for command in dangerous}
    users = [checks.parse_acl_line(line) for line in acl_list]
    return checks.RedisFacts(
        config={"bind": "10.244.0.7 127.0.0.1 -::1", "protected-mode": "yes", "port": "0",
                "tls-port": "6379", "tls-auth-clients": "yes",
                "tls-protocols": "TLSv1.2 TLSv1.3", "tls-replication": "yes",
                "tls-cluster": "no", "cluster-enabled": "no", "maxmemory": "209715200",
                "acllog-max-len": "128", "enable-debug-command": "no"},
        info={"redis_version": "7.0.15", "maxmemory": "209715200"},
        acl_list=acl_list,
        dangerous_commands=dangerous,
        dangerous_verdicts={user.name: dict(verdicts) for user in users if user.enabled},
        original_names_present={command: False for command in checks.CHECKLIST_COMMANDS},
        tls=True, tls_version="TLSv1.3", hostname_verified=True,
        client_certificate_required=True,
    )


def status(ready_pods: int, facts: checks.RedisFacts | None = None, old: dict | None = None,
           generation: int = 1) -> dict:
    return reconcile.compute_status(SR, MATERIAL, statefulset(ready_pods), CHILDREN, old or {},
                                    redis_facts=facts, generation=generation, now=NOW)


def with_status(observed: dict, generation: int = 1) -> dict:
    return {**example_body(generation), "status": observed}


def stalled_status(old: dict | None = None, generation: int = 1) -> dict:
    body = example_body(generation)
    body["spec"]["replicas"] = 3  # standalone runs one pod
    with pytest.raises(spec.SpecError) as error:
        spec.load(body)
    kube = RecordingKube()
    result = reconcile.stall(kube, reconcile.ref_of(body), old or {}, generation,
                             error.value.errors, now=NOW, logger=logging.getLogger("test"))
    assert kube.statuses == [result.status]
    return result.status


# --- Verdicts ----------------------------------------------------------------------------

def test_no_status_progressing(tmp_path):
    verdict, message = health(example_body(), tmp_path)

    assert verdict == "Progressing"
    assert message == "Waiting for the operator to report status"


def test_pods_not_ready_progressing(tmp_path):
    verdict, message = health(with_status(status(0)), tmp_path)

    assert verdict == "Progressing"
    assert message == "0/1 pods ready"


def test_checks_not_determined_progressing(tmp_path):
    current = status(1)
    verdict, message = health(with_status(current), tmp_path)

    assert current["checks"]["passed"] < current["checks"]["total"]
    assert verdict == "Progressing"
    assert message.startswith("pods are ready but these checks are not determined yet: ")


def test_every_check_passed_healthy(tmp_path):
    current = status(1, passing_facts())
    verdict, message = health(with_status(current), tmp_path)

    assert current["checks"]["failed"] == []
    assert verdict == "Healthy"
    assert message == "1/1 pods ready and 12/12 checks passed"


def test_failed_check_progressing(tmp_path):
    facts = passing_facts()
    facts = dataclasses.replace(facts, config={**facts.config, "protected-mode": "no"})
    verdict, message = health(with_status(status(1, facts)), tmp_path)

    assert verdict == "Progressing"
    assert message == "failed: protected-mode"


def test_invalid_spec_degraded(tmp_path):
    verdict, message = health(with_status(stalled_status()), tmp_path)

    assert verdict == "Degraded"
    assert "spec.replicas" in message


def test_new_generation_progressing(tmp_path):
    healthy = status(1, passing_facts())
    verdict, message = health(with_status(healthy, generation=2), tmp_path)

    assert verdict == "Progressing"
    assert message == "Waiting for the operator to observe generation 2"


def test_fixed_spec_not_degraded(tmp_path):
    """A spec corrected after a stall is Progressing until the operator sees it."""
    verdict, _ = health(with_status(stalled_status(), generation=2), tmp_path)

    assert verdict == "Progressing"


def test_recovery_from_stall_healthy(tmp_path):
    recovered = status(1, passing_facts(), old=stalled_status(), generation=2)
    verdict, message = health(with_status(recovered, generation=2), tmp_path)

    assert verdict == "Healthy"
    assert message == "1/1 pods ready and 12/12 checks passed"


def test_stall_after_ready_degraded(tmp_path):
    stalled = stalled_status(old=status(1, passing_facts()), generation=2)
    verdict, _ = health(with_status(stalled, generation=2), tmp_path)

    assert verdict == "Degraded"


def test_message_escapes_survive(tmp_path):
    current = status(0)
    current["conditions"] = [dict(c, message='say "hi" \\ ünïcode\nline')
                             if c["type"] == "Ready" else c for c in current["conditions"]]
    _, message = health(with_status(current), tmp_path)

    assert message == 'say "hi" \\ ünïcode\nline'
