# The operator's image. hack/build-operator-image.sh builds the same image
# without a Docker engine (from Debian packages and the same lock files);
# keep the two in step.
#
#   docker build -t localhost/secure-redis/operator:0.1.0 .
#
# The base is pinned to a Python patch release on Debian bookworm, by tag
# only: no registry can be reached where this file was written, so no digest
# could be read. Add "@sha256:<digest>" to both FROM lines when building in
# a pipeline that can resolve it, so a rebuilt tag cannot change the image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Pinned build tools, then the wheel, built without network access to
# unpinned build dependencies.
COPY requirements/operator-build.txt requirements/operator.txt /requirements/
RUN python -m venv /tmp/build-venv \
 && /tmp/build-venv/bin/pip install --require-hashes -r /requirements/operator-build.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /tmp/build-venv/bin/pip wheel --no-deps --no-build-isolation -w /dist . \
 && python -m venv /opt/secure-redis \
 && /opt/secure-redis/bin/pip install --require-hashes -r /requirements/operator.txt \
 && /opt/secure-redis/bin/pip install --no-deps /dist/*.whl \
 && /opt/secure-redis/bin/pip check \
 && /opt/secure-redis/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# uid 65532 is the "nonroot" user of minimal images; the Deployment in
# manifests/base runs the pod as this uid with a read-only root filesystem.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /home/nonroot --shell /usr/sbin/nologin nonroot \
 && pip uninstall --yes pip setuptools wheel \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +
COPY --from=builder /opt/secure-redis /opt/secure-redis
RUN ln -s /opt/secure-redis/bin/secure-redis /usr/local/bin/secure-redis
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/usr/local/bin/secure-redis"]
CMD ["run"]
