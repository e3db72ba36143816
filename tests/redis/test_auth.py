"""Authentication: nothing runs before AUTH, and the ``default`` user cannot log in."""

from __future__ import annotations

import pytest
import redis

from redis_harness import send_raw

pytestmark = pytest.mark.redis

# Any text works: the default user has no password at all.
GUESSED_PASSWORD = "not-the-password-of-anyone"


def test_unauthenticated_command_gets_noauth(server):
    replies = send_raw(server, ("GET", "cache:absent"))
    assert replies[0].startswith(b"-NOAUTH ")


def test_unauthenticated_ping_gets_noauth(server):
    replies = send_raw(server, ("PING",))
    assert replies[0].startswith(b"-NOAUTH ")


def test_unauthenticated_client_gets_noauth(server):
    # With protocol 2 and no credentials redis-py sends no AUTH or HELLO. Its
    # CLIENT SETINFO is an unknown subcommand on Redis 7.0 and redis-py ignores
    # that error, so the connection opens and the first command meets NOAUTH.
    client = server.connect(tls_files=server.server_files, protocol=2)
    with pytest.raises(redis.AuthenticationError) as failure:
        client.get("cache:absent")
    assert str(failure.value) == "Authentication required."


def test_hello_without_auth_rejected(server):
    # With protocol 3 redis-py opens with HELLO 3, which an unauthenticated
    # client may send only with the AUTH option.
    client = server.connect(tls_files=server.server_files, protocol=3)
    with pytest.raises(redis.AuthenticationError) as failure:
        client.ping()
    assert str(failure.value).startswith("HELLO must be called with the client already "
                                         "authenticated")


def test_auth_default_fails(server):
    replies = send_raw(server, ("AUTH", "default", GUESSED_PASSWORD), ("PING",))
    assert replies[0].startswith(b"-WRONGPASS ")
    assert replies[1].startswith(b"-NOAUTH ")


def test_auth_without_username_fails(server):
    # One-argument AUTH logs in as the default user.
    replies = send_raw(server, ("AUTH", GUESSED_PASSWORD), ("PING",))
    assert replies[0].startswith(b"-WRONGPASS ")
    assert replies[1].startswith(b"-NOAUTH ")


@pytest.mark.parametrize("protocol", [2, 3])
def test_default_user_client_fails(server, protocol):
    client = server.connect("default", GUESSED_PASSWORD, tls_files=server.server_files,
                            protocol=protocol)
    with pytest.raises(redis.AuthenticationError) as failure:
        client.ping()
    assert "invalid username-password pair or user is disabled" in str(failure.value)


def test_default_user_is_off_without_nopass(admin):
    default = admin.acl_getuser("default")
    assert "off" in default["flags"]
    assert "nopass" not in default["flags"]
    assert default["passwords"] == []
    assert default["categories"] == ["-@all"]
    assert default["keys"] == []
    assert default["channels"] == []


def test_wrong_password_fails(server):
    credential = server.credential("cache_reader")
    client = server.connect(credential.username, GUESSED_PASSWORD,
                            tls_files=server.client_files["cache_reader"])
    with pytest.raises(redis.AuthenticationError):
        client.ping()
