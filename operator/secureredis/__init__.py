"""secure-redis-operator: Redis on Kubernetes, hardened to a security checklist.

The package is layered, and each layer imports only from the layers below it
(an import-linter contract in the repository enforces the order):

1. ``spec``, ``acl``, ``pki``, ``credentials``, ``names``: the typed API and
   the pure helpers that build generated material. No I/O.
2. ``redisconf`` and ``render``: pure builders that turn a spec plus its
   generated material into Kubernetes objects and Redis configuration.
3. ``kube`` and ``redisadmin``: the only modules that talk to the Kubernetes
   API and to Redis.
4. ``reconcile`` and ``rotation``: the ordered steps that drive a deployment
   towards its rendered state.
5. ``handlers`` and ``cli``: kopf registration and the command line.
"""

__version__ = "0.1.0"

GROUP = "secureredis.io"
VERSION = "v1alpha1"
KIND = "SecureRedis"
PLURAL = "secureredises"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "secure-redis-operator"
