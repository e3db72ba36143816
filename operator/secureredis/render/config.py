"""ConfigMaps: redis.conf and users.acl. Neither ever holds a secret."""

from __future__ import annotations

from .. import names, redisconf
from ..material import Material
from ..spec import SecureRedis
from .meta import metadata


def redis_config_map(sr: SecureRedis) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(sr, names.config_map(sr.name), "config"),
        "data": {"redis.conf": redisconf.redis_conf(sr)},
    }


def acl_config_map(sr: SecureRedis, material: Material) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(sr, names.acl_config_map(sr.name), "acl"),
        "data": {"users.acl": redisconf.users_acl(sr, material)},
    }
