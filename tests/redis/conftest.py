"""Fixtures that start real redis-servers for a test module and kill them after it.

The helpers live in redis_harness.py so test modules can import them.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import redis

from secureredis import spec

from redis_harness import (
    RedisServer, redact_known_secrets, secure_redis_object, start_redis_server,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Redact every generated password and private key from the failure reports of these tests.

    pytest prints the arguments of every frame in a traceback, and frames
    inside redis-py hold the AUTH and HELLO arguments.
    """
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = redact_known_secrets(str(report.longrepr))


@pytest.fixture(scope="module")
def start_redis(tmp_path_factory) -> Iterator[Callable[..., RedisServer]]:
    """Yield a function that starts a server for a SecureRedis object. Every server stops with the module."""
    servers: list[RedisServer] = []

    def start(obj: dict | None = None) -> RedisServer:
        sr = spec.load(obj or secure_redis_object())
        server = start_redis_server(sr, tmp_path_factory.mktemp("redis"))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(start_redis) -> RedisServer:
    """A server for ``secure_redis_object()``: a cache without persistence."""
    return start_redis()


@pytest.fixture(scope="module")
def admin(server) -> redis.Redis:
    """A client logged in as the spec's admin user (``admin: true``, ``+@all``)."""
    return server.client("redis_admin")


@pytest.fixture(scope="module")
def operator_client(server) -> redis.Redis:
    """A client logged in as the operator's own system user."""
    return server.client("operator")
