# The SLA engine as a container image: `sla-engine run` with the example agreement
# configuration in /app/config (mount the real one over it). deploy/compose.yaml builds
# and runs it next to RabbitMQ, PostgreSQL, Prometheus and Grafana.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A system account with no home and no shell: the engine writes nothing to disk.
RUN groupadd --system sla-engine \
    && useradd --system --gid sla-engine --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin sla-engine

# Only what `pip install .` reads (README.md is the package's readme); the sources are
# removed after the install so that nothing imports them instead of the installed package.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine/ ./engine/
RUN pip install --no-cache-dir . \
    && rm -rf /src

WORKDIR /app
COPY config/ ./config/

# In a container the engine must listen beyond 127.0.0.1 to be scraped and checked.
ENV SLA_ENGINE_CONFIG_DIR=/app/config \
    SLA_ENGINE_HTTP_HOST=0.0.0.0 \
    SLA_ENGINE_HTTP_PORT=8321

USER sla-engine:sla-engine
EXPOSE 8321
# SIGTERM starts the engine's graceful shutdown (stop intake, drain up to its grace,
# close): give it more than SLA_ENGINE_SHUTDOWN_GRACE_S, as compose's stop_grace_period does.
STOPSIGNAL SIGTERM
# The slim image has no curl: ask with Python's urllib, which fails on any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8321/healthz', timeout=4)"]

ENTRYPOINT ["sla-engine"]
CMD ["run"]
