# syntax=docker/dockerfile:1
# The loyalty rules service: `docker build -t loyalty-rules .` then
# `docker run -p 50051:50051 loyalty-rules` serves the policies baked in at build time
# (the repository's policies/, tree and all: the revision `loyalty check policies` prints).
# Mount a directory on /srv/policies to serve (and hot-reload) your own instead.
#
# The runtime is slim: the service's dependencies only. `loyalty replay` needs the `replay`
# extra (pyarrow, matplotlib, tqdm: about 340 MB), which this image leaves out.
#
# The base image is pinned by digest, so a rebuild gets the same Python and Debian. The digest
# is python:3.11-slim's as published in public Dockerfiles; it could not be pulled or checked
# where this file was written. Refresh it with
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# --- build: install the project and its dependencies into a virtualenv ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/runtime.lock ./requirements/
# Every version and file hash from the lock (the dev lock's versions, which CI tested); then
# the project itself, built by the locked setuptools without fetching anything else.
RUN pip install --require-hashes --no-deps -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY dsl ./dsl
COPY service ./service
RUN pip install --no-deps --no-build-isolation .

# --- runtime: the virtualenv, the reviewed policies, a non-root user ---
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="loyalty-rules"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOYALTY_HOST=0.0.0.0 \
    LOYALTY_PORT=50051 \
    LOYALTY_METRICS_PORT=9464 \
    LOYALTY_POLICIES=/srv/policies \
    LOYALTY_LOG_FORMAT=json
RUN groupadd --system --gid 10001 loyalty \
 && useradd --system --uid 10001 --gid loyalty --no-create-home --shell /usr/sbin/nologin loyalty
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root policies /srv/policies
USER 10001:10001
WORKDIR /srv
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["loyalty", "serve"]
