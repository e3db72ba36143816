"""A user's CA (spec.tls.issuer: secret) against a real redis-server.

The CA is an intermediate under a company root, the common case. Redis only
trusts a chain that ends in a root it holds, so the trusted bundle contains
the intermediate and the root. These tests show what that admits.
"""

from __future__ import annotations

import ssl
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from secureredis import material, pki, spec

from redis_harness import (
    TLSFiles, open_tls, read_lines, resp_command, secure_redis_object, start_redis_server,
    tls_context, write_private_file,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.certs import company_pki, make_authority  # noqa: E402

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def corp():
    return company_pki(datetime.now(timezone.utc))


@pytest.fixture(scope="module")
def server(corp, tmp_path_factory):
    root, intermediate = corp
    sr = spec.load(secure_redis_object(tls={"issuer": "secret", "secretName": "corp-ca"}))
    now = datetime.now(timezone.utc)
    ca = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=now)
    running = start_redis_server(sr, tmp_path_factory.mktemp("redis"),
                                 material=material.ensure(sr, None, now=now, external_ca=ca))
    yield running
    running.stop()


def client_files(directory: Path, signer: pki.CertKey, username: str) -> TLSFiles:
    """Write a client certificate for ``username`` signed by ``signer``."""
    sr = spec.load(secure_redis_object())
    cert = material.client_certificate(sr, signer, username, datetime.now(timezone.utc))
    files = TLSFiles(str(directory / "client.crt"), str(directory / "client.key"))
    write_private_file(Path(files.cert), cert.cert_pem)
    write_private_file(Path(files.key), cert.key_pem)
    return files


def test_user_with_users_ca_certificate(server):
    client = server.client("app_service")
    assert client.set("app:greeting", "hello")
    assert client.get("app:greeting") == "hello"


def test_other_root_rejected(server, tmp_path):
    stranger = make_authority("Stranger Root", now=datetime.now(timezone.utc))
    context = tls_context(server, tls_files=client_files(tmp_path, stranger, "app_service"))
    mark = server.log_size()
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls = open_tls(server, context)
        # TLS 1.3 reports a refused client certificate on the first read.
        tls.sendall(resp_command("PING"))
        read_lines(tls, 1)
    assert server.wait_for_log("certificate", since=mark)


def test_root_signed_certificate_needs_password(server, corp, tmp_path):
    # The root is in the bundle, so anything it signs passes the handshake.
    # The ACL still requires a user's password (see docs/rotation.md).
    root, _ = corp
    context = tls_context(server, tls_files=client_files(tmp_path, root, "app_service"))
    tls = open_tls(server, context)
    try:
        tls.sendall(resp_command("GET", "app:greeting"))
        assert read_lines(tls, 1)[0].startswith(b"-NOAUTH")
    finally:
        tls.close()
