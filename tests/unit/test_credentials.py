"""Passwords, hashes and material.ensure keeping what already exists."""

from __future__ import annotations

import hashlib
import string
from dataclasses import replace

import pytest

from secureredis import credentials, material, spec
from spec_inputs import NOW, secure_redis, user

USERS = {"acl": {"users": [user("reader", "~a:*", "+get"), user("writer", "~a:*", "+set")]}}


@pytest.fixture(scope="module")
def sr():
    return spec.load(secure_redis(USERS))


@pytest.fixture(scope="module")
def existing(sr):
    return material.ensure(sr, None, now=NOW)


def test_password_length():
    assert len(credentials.generate_password()) >= 32


def test_password_length_floor():
    with pytest.raises(ValueError):
        credentials.generate_password(31)


def test_password_alphabet():
    allowed = set(string.ascii_letters + string.digits)

    stray = set(credentials.generate_password()) - allowed

    assert not stray


def test_passwords_unique():
    drawn = {credentials.generate_password() for _ in range(1000)}

    assert len(drawn) == 1000


def test_password_hash_is_sha256():
    password = credentials.generate_password()

    digest = credentials.password_hash(password)

    assert digest == hashlib.sha256(password.encode()).hexdigest()
    assert len(digest) == 64


@pytest.mark.parametrize(("password", "expected_ok"), [
    ("x" * 32, True),
    ("x" * 31, False),
    ("x" * 31 + " ", False),
    ("x" * 31 + "\n", False),
])
def test_check_password(password, expected_ok):
    assert (credentials.check_password(password) is None) == expected_ok


def test_random_command_name():
    first = credentials.random_command_name("config")
    second = credentials.random_command_name("config")

    assert first.startswith("CONFIG_")
    assert len(first) == len("CONFIG_") + 32
    assert first != second


def test_fresh_material_complete(sr, existing):
    assert set(existing.users) == {"reader", "writer"}
    assert set(existing.system) == {"operator", "replication", "probe", "exporter"}
    assert all(len(c.password) >= 32 for c in existing.users.values())
    assert existing.system["operator"].client_cert is not None
    assert existing.renames["flushall"] == ""
    assert existing.renames["config"].startswith("CONFIG_")


def test_fresh_passwords_distinct(existing):
    passwords = [c.password for c in [*existing.users.values(), *existing.system.values()]]

    assert len(set(passwords)) == len(passwords)


def test_ensure_keeps_everything(sr, existing):
    again = material.ensure(sr, existing, now=NOW)

    assert again.ca == existing.ca
    assert again.server == existing.server
    assert again.users == existing.users
    assert again.system == existing.system
    assert again.renames == existing.renames
    assert again.ca_bundle == existing.ca_bundle


def test_ensure_adds_new_user(existing):
    grown = spec.load(secure_redis({"acl": {"users": [
        *USERS["acl"]["users"], user("auditor", "~a:*", "+get")]}}))

    updated = material.ensure(grown, existing, now=NOW)

    assert updated.ca == existing.ca
    assert updated.users["reader"] == existing.users["reader"]
    assert updated.users["writer"] == existing.users["writer"]
    assert len(updated.users["auditor"].password) >= 32
    assert updated.users["auditor"].hashes[0] not in {
        c.hashes[0] for c in existing.users.values()}
    assert updated.users["auditor"].client_cert is not None


def test_ensure_drops_removed_user(existing):
    shrunk = spec.load(secure_redis({"acl": {"users": [USERS["acl"]["users"][0]]}}))

    updated = material.ensure(shrunk, existing, now=NOW)

    assert set(updated.users) == {"reader"}
    assert updated.users["reader"] == existing.users["reader"]


def test_ensure_keeps_random_renames(existing):
    changed = spec.load(secure_redis({**USERS, "commands": {"rename": {"keys": ""}}}))

    updated = material.ensure(changed, existing, now=NOW)

    assert updated.renames["config"] == existing.renames["config"]
    assert updated.renames["debug"] == existing.renames["debug"]
    assert updated.renames["keys"] == ""


def test_ensure_replaces_chosen_name(sr, existing):
    chosen = replace(existing, renames={**existing.renames, "config": "My_Config_Cmd"})

    updated = material.ensure(sr, chosen, now=NOW)

    assert updated.renames["config"] != "My_Config_Cmd"
    assert updated.renames["config"].startswith("CONFIG_")


def test_ensure_fills_missing_system_user(sr, existing):
    partial = replace(existing, system={
        role: c for role, c in existing.system.items() if role != "probe"})

    updated = material.ensure(sr, partial, now=NOW)

    assert updated.system["operator"] == existing.system["operator"]
    assert len(updated.system["probe"].password) >= 32


def test_external_password_used(sr):
    external = "E" * 40

    generated = material.ensure(sr, None, now=NOW, external_passwords={"reader": external})

    assert generated.users["reader"].hashes == [credentials.password_hash(external)]


def test_external_password_pending(sr, existing):
    old_hashes = existing.users["reader"].hashes
    external = "F" * 40

    updated = material.ensure(sr, existing, now=NOW, external_passwords={"reader": external})

    # A changed external password is accepted by the servers first and
    # published only once every server has it.
    assert updated.users["reader"].hashes == [*old_hashes, credentials.password_hash(external)]
    assert updated.users["reader"].pending == (external,)
    assert updated.users["reader"].password == existing.users["reader"].password
    assert updated.users["writer"] == existing.users["writer"]


def test_external_password_unchanged(sr, existing):
    external = "G" * 40
    first = material.ensure(sr, existing, now=NOW, external_passwords={"reader": external})

    second = material.ensure(sr, first, now=NOW, external_passwords={"reader": external})

    assert second.users["reader"].hashes == first.users["reader"].hashes


def test_credential_hashes_match(existing):
    credential = existing.users["reader"]

    assert credential.hashes == [credentials.password_hash(p) for p in credential.passwords]


def test_random_name_recognised():
    name = credentials.random_command_name("keys")

    assert credentials.is_random_command_name("keys", name)
    assert not credentials.is_random_command_name("config", name)
    assert not credentials.is_random_command_name("keys", "KEYS_mine")
    assert not credentials.is_random_command_name("keys", "KEYS_" + "G" * 32)


def test_repr_hides_secrets(existing):
    text = repr(existing)
    secrets = [c.password for c in [*existing.users.values(), *existing.system.values()]]
    secrets.append(existing.ca.key_pem)
    leaked = [index for index, secret in enumerate(secrets) if secret in text]

    assert "PRIVATE KEY" not in text
    assert leaked == []
