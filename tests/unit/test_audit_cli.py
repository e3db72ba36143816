"""Argument handling of ``secure-redis audit`` that needs no server."""

from __future__ import annotations

import argparse

import pytest

from secureredis import cli


@pytest.mark.parametrize("url, user, expected", [
    ("rediss://cache.apps.svc:6379", None, cli.AuditTarget(True, "cache.apps.svc", 6379, None)),
    ("rediss://app@10.0.0.5", None, cli.AuditTarget(True, "10.0.0.5", 6379, "app")),
    ("redis://127.0.0.1:7000", "reader", cli.AuditTarget(False, "127.0.0.1", 7000, "reader")),
    ("rediss://app@[::1]:6380/0", "app", cli.AuditTarget(True, "::1", 6380, "app")),
    ("rediss://cache_reader%40x@h:1", None, cli.AuditTarget(True, "h", 1, "cache_reader@x")),
])
def test_parse_audit_url(url, user, expected):
    assert cli.parse_audit_url(url, user) == expected


@pytest.mark.parametrize("url, user, fragment", [
    ("http://cache:6379", None, "not a Redis URL"),
    ("rediss://app:secret@cache:6379", None, "--password-env"),
    ("rediss://cache:6379/3", None, "path"),
    ("rediss://cache:notaport", None, "invalid port"),
    ("rediss://:6379", None, "no host"),
    ("rediss://app@cache:6379", "other", "differs"),
])
def test_parse_audit_url_rejects(url, user, fragment):
    with pytest.raises(cli.UsageError, match=fragment):
        cli.parse_audit_url(url, user)


def test_password_in_url_not_echoed():
    with pytest.raises(cli.UsageError) as raised:
        cli.parse_audit_url("rediss://app:Hidden-Value-42@cache:6379", None)

    assert "Hidden-Value-42" not in str(raised.value)


def test_audit_target_str_brackets_ipv6():
    assert str(cli.AuditTarget(True, "::1", 6380, "app")) == "rediss://app@[::1]:6380"


def test_parse_renames():
    renames = cli.parse_renames(["CONFIG=CONFIG_abc12345", "flushall=", " Debug = DEBUG_x1 "])

    assert renames == {"config": "CONFIG_abc12345", "flushall": "", "debug": "DEBUG_x1"}


@pytest.mark.parametrize("entry", ["config", "=NAME", ""])
def test_parse_renames_rejects(entry):
    with pytest.raises(cli.UsageError, match="--renamed"):
        cli.parse_renames([entry])


def password_args(**values) -> argparse.Namespace:
    return argparse.Namespace(**{"password_env": cli.PASSWORD_ENV_DEFAULT,
                                 "password_file": None, **values})


def test_read_password_from_file(tmp_path):
    path = tmp_path / "password"
    path.write_text("line-one-value\r\n")

    assert cli.read_password(password_args(password_file=str(path))) == "line-one-value"


def test_read_password_from_env(monkeypatch):
    monkeypatch.setenv("AUDIT_PASSWORD", "from-environment")

    assert cli.read_password(password_args(password_env="AUDIT_PASSWORD")) == "from-environment"


def test_read_password_default_env_unset(monkeypatch):
    monkeypatch.delenv(cli.PASSWORD_ENV_DEFAULT, raising=False)

    assert cli.read_password(password_args()) is None


def test_read_password_named_env_unset(monkeypatch):
    monkeypatch.delenv("AUDIT_UNSET_VARIABLE", raising=False)

    with pytest.raises(cli.UsageError, match="AUDIT_UNSET_VARIABLE"):
        cli.read_password(password_args(password_env="AUDIT_UNSET_VARIABLE"))


def test_operator_system_users_cover_every_engine():
    users = cli.operator_system_users()

    assert "+sync" in users["secureredis-replication"]
    assert "+psync" in users["secureredis-replication"]
    assert "+config|get" in users["secureredis-operator"]


def test_audit_user_without_password_exits_2(monkeypatch, capsys):
    monkeypatch.delenv(cli.PASSWORD_ENV_DEFAULT, raising=False)

    code = cli.main(["audit", "rediss://app@127.0.0.1:1"])

    assert code == 2
    assert "REDISCLI_AUTH" in capsys.readouterr().err


def test_audit_tls_options_need_rediss(monkeypatch, capsys):
    monkeypatch.delenv(cli.PASSWORD_ENV_DEFAULT, raising=False)

    code = cli.main(["audit", "redis://127.0.0.1:1", "--cacert", "ca.crt"])

    assert code == 2
    assert "rediss://" in capsys.readouterr().err
