"""TLS on the only port: no plaintext, TLS 1.2 and 1.3 only, client certificates required."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from secureredis import pki

from redis_harness import (
    LOOPBACK, RedisServer, TLSFiles, open_tls, read_lines, resp_command, tls_context,
    write_private_file,
)

pytestmark = pytest.mark.redis


def ping_as_probe(server: RedisServer, tls: ssl.SSLSocket) -> list[bytes]:
    """Log in as the probe user over an open TLS socket and PING."""
    probe = server.credential("probe")
    tls.sendall(resp_command("AUTH", probe.username, probe.password) + resp_command("PING"))
    return read_lines(tls, 2)


def test_plaintext_connection_fails(server):
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as sock:
        sock.sendall(resp_command("PING"))
        try:
            reply = sock.recv(64)
        except ConnectionResetError:
            reply = b""
    assert reply == b"", "the TLS port replied to a plaintext PING"


def test_plaintext_client_fails(server):
    mark = server.log_size()
    client = redis.Redis(host=LOOPBACK, port=server.port, protocol=2,
                         socket_timeout=5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
    assert server.wait_for_log("wrong version number", since=mark)


def test_tls11_rejected(server):
    # OpenSSL 3 will not offer TLS 1.1 at security level 1 or more, so the
    # client drops to level 0 and the rejection has to come from the server.
    context = tls_context(server, ssl.TLSVersion.TLSv1_1, tls_files=server.server_files,
                          ciphers="DEFAULT:@SECLEVEL=0")
    mark = server.log_size()
    with pytest.raises(ssl.SSLError) as failure:
        open_tls(server, context).close()
    assert failure.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert server.wait_for_log("unsupported protocol", since=mark)


@pytest.mark.parametrize("version, name", [
    (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
    (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
])
def test_tls_version_accepted(server, version, name):
    context = tls_context(server, version, tls_files=server.server_files)
    with open_tls(server, context) as tls:
        negotiated = tls.version()
        replies = ping_as_probe(server, tls)
    assert negotiated == name
    assert replies == [b"+OK", b"+PONG"]


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_server_certificate_matches_name(server, name):
    context = tls_context(server, tls_files=server.server_files)
    with open_tls(server, context, server_hostname=name) as tls:
        negotiated = tls.version()
    assert negotiated in ("TLSv1.2", "TLSv1.3")


def test_server_certificate_rejects_other_name(server):
    context = tls_context(server, tls_files=server.server_files)
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        open_tls(server, context, server_hostname="redis.example.org").close()
    assert "Hostname mismatch" in failure.value.verify_message


def test_client_certificate_accepted(server):
    client = server.client("cache_reader")
    assert client.get("cache:absent") is None


def assert_handshake_rejected(server, tls_files: TLSFiles | None, server_error: str) -> None:
    """Check that cache_reader, with the right password, cannot connect using ``tls_files``."""
    credential = server.credential("cache_reader")
    mark = server.log_size()
    client = server.connect(credential.username, credential.password, tls_files=tls_files)
    with pytest.raises(redis.ConnectionError):
        client.get("cache:absent")
    assert server.wait_for_log(server_error, since=mark)


def test_missing_client_certificate_rejected(server):
    assert_handshake_rejected(server, None, "peer did not return a certificate")


def test_other_ca_certificate_rejected(server, tmp_path: Path):
    now = datetime.now(timezone.utc)
    other_ca = pki.make_ca("unrelated CA", now=now, duration=timedelta(days=1),
                           algorithm="ECDSA-P256")
    leaf = pki.make_leaf(other_ca, "cache_reader", now=now, duration=timedelta(days=1),
                         algorithm="ECDSA-P256", server=False, client=True)
    files = TLSFiles(str(tmp_path / "other.crt"), str(tmp_path / "other.key"))
    write_private_file(Path(files.cert), leaf.cert_pem)
    write_private_file(Path(files.key), leaf.key_pem)
    assert_handshake_rejected(server, files, "certificate verify failed")
