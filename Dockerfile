# syntax=docker/dockerfile:1
# The loyalty rules service: `docker build -t loyalty .` then
# `docker run -p 50051:50051 loyalty` serves the bundled policies;
# mount a directory on /srv/policies to serve (and hot-reload) your own.

# --- build: install the project and its dependencies into a virtualenv, as CI does ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dsl ./dsl
COPY service ./service
RUN pip install .

# --- runtime: the virtualenv, the bundled policies, a non-root user ---
FROM python:3.11-slim
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
