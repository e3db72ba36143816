"""The StatefulSet's exec probe, run as rendered against a live server.

``probe_command`` gets this server's certificate paths and port instead of
the pod's. The probe reads the probe user's password from a file beside
private.conf, as the pod's mounted Secret provides it, and hands it to
redis-cli only through ``REDISCLI_AUTH``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from redis_harness import write_private_file
from secureredis.render.statefulset import probe_command

pytestmark = pytest.mark.redis


def run_probe(server, password: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDISCLI_AUTH", "VALKEYCLI_AUTH")}
    password_file = Path(server.paths.probe_password_file)
    password_file.unlink(missing_ok=True)
    if password is not None:
        write_private_file(password_file, password)
    return subprocess.run(probe_command(server.sr, server.paths, server.port), env=env,
                          capture_output=True, text=True, timeout=30)


def describe(server, result: subprocess.CompletedProcess) -> str:
    return server.redact(f"exit code {result.returncode}, stdout {result.stdout!r}, "
                         f"stderr {result.stderr!r}")


def test_probe_passes_with_password(server):
    result = run_probe(server, server.credential("probe").password)
    assert result.returncode == 0, describe(server, result)


def test_probe_fails_with_wrong_password(server):
    result = run_probe(server, "not-the-password-of-anyone")
    assert result.returncode != 0, describe(server, result)


def test_probe_fails_without_password(server):
    result = run_probe(server, None)
    assert result.returncode != 0, describe(server, result)


def test_probe_fails_with_other_user_password(server):
    # Another user's valid password does not belong to the probe user.
    result = run_probe(server, server.credential("operator").password)
    assert result.returncode != 0, describe(server, result)


def test_probe_fails_when_server_down(start_redis):
    stopped = start_redis()
    password = stopped.credential("probe").password
    stopped.stop()
    result = run_probe(stopped, password)
    assert result.returncode != 0, describe(stopped, result)
