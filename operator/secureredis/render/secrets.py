"""Secrets: the CA, the server certificate, system credentials and one per user.

Values go in ``data`` (base64), the field the API server stores, so a
server-side apply that repeats the same values changes nothing.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from .. import material as material_module
from .. import names, redisconf
from ..material import Credential, Material
from ..spec import SecureRedis
from .meta import b64, metadata


def _secret(sr: SecureRedis, name: str, component: str, data: dict[str, str],
            secret_type: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(sr, name, component),
        "type": secret_type,
        "data": {key: b64(value) for key, value in data.items()},
    }


# Every piece of material is kept, serialized, in two operator-only Secrets
# (the CA Secret and the system Secret), so deleting any one Secret never
# forces the operator to regenerate a CA, a key or a password.
STATE_KEY = "material.json"


def ca_secret(sr: SecureRedis, material: Material) -> dict:
    """Return the CA certificate and key, and a copy of all material; operator-only."""
    return _secret(sr, names.ca_secret(sr.name), "ca", {
        "ca.crt": material.ca.cert_pem,
        "ca.key": material.ca.key_pem,
        STATE_KEY: material_module.to_json(material),
    })


def tls_secret(sr: SecureRedis, material: Material) -> dict:
    """Return the server certificate the pods mount, with the trusted CA bundle."""
    return _secret(sr, names.tls_secret(sr.name), "tls", {
        "tls.crt": material.server.cert_pem,
        "tls.key": material.server.key_pem,
        "ca.crt": material.trusted_cas,
    }, secret_type="kubernetes.io/tls")


def system_secret(sr: SecureRedis, material: Material) -> dict:
    """Return the system users' passwords, the operator's client certificate and private.conf."""
    data: dict[str, str] = {}
    for role, credential in sorted(material.system.items()):
        data[f"{role}-username"] = credential.username
        data[f"{role}-password"] = credential.password
        if credential.client_cert:
            data[f"{role}.crt"] = credential.client_cert.cert_pem
            data[f"{role}.key"] = credential.client_cert.key_pem
    data["renamed-commands.json"] = json.dumps(dict(sorted(material.renames.items())))
    data["private.conf"] = redisconf.private_conf(material)
    data[STATE_KEY] = material_module.to_json(material)
    return _secret(sr, names.system_secret(sr.name), "system", data)


def connection_url(sr: SecureRedis, credential: Credential) -> str:
    host = f"{names.client_service(sr.name)}.{sr.namespace}.svc.{sr.cluster_domain}"
    return (f"rediss://{quote(credential.username, safe='')}:{quote(credential.password, safe='')}"
            f"@{host}:{names.CLIENT_PORT}")


def user_secrets(sr: SecureRedis, material: Material) -> list[dict]:
    """Return one Secret per application user with everything a client needs."""
    secrets = []
    for user in sr.users:
        credential = material.users[user.name]
        data = {
            "username": credential.username,
            "password": credential.password,
            "host": f"{names.client_service(sr.name)}.{sr.namespace}.svc.{sr.cluster_domain}",
            "port": str(names.CLIENT_PORT),
            "url": connection_url(sr, credential),
            "ca.crt": material.trusted_cas,
        }
        if credential.client_cert:
            data["tls.crt"] = credential.client_cert.cert_pem
            data["tls.key"] = credential.client_cert.key_pem
        secrets.append(_secret(sr, names.user_secret(sr.name, user.name), "credentials", data))
    return secrets
