# syntax=docker/dockerfile:1
# Model Access Gateway: a multi-stage image.
#   builder  builds the wheel and installs it with its dependencies into /opt/gateway
#   runtime  the slim image that runs it as an unprivileged user
#
# Mounted at run time (see compose.yaml):
#   /etc/gateway/gateway.yaml   settings
#   /etc/gateway/policies/      policy files
#   /etc/gateway/certs/         TLS and CA material
#   /var/lib/gateway            the audit store (a volume)

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/gateway/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/gateway/bin/pip install /wheels/*.whl

FROM python:3.11-slim AS runtime
RUN groupadd --system gateway \
 && useradd --system --gid gateway --home-dir /var/lib/gateway --no-create-home \
        --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway/policies /etc/gateway/certs /var/lib/gateway \
 && chown gateway:gateway /var/lib/gateway
COPY --from=builder /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER gateway
WORKDIR /var/lib/gateway
VOLUME ["/var/lib/gateway"]
EXPOSE 8443
# The listener may be TLS with client certificates, so the default check is a TCP
# connect (no certificate checks switched off). Set GATEWAY_HEALTHCHECK_URL to an
# http:// URL of /healthz on a plain listener for a full HTTP check instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, socket, urllib.request; url = os.environ.get('GATEWAY_HEALTHCHECK_URL'); (urllib.request.urlopen(url, timeout=3) if url else socket.create_connection(('127.0.0.1', 8443), timeout=3)).close()"]
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.yaml"]
