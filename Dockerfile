# bdc-hub image: build wheels in one stage, run as an unprivileged user in the next.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# The repository root is the bdchub package (pyproject maps it); .dockerignore
# leaves out tests, benchmarks and tools.
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim-bookworm
# The notices (受理通知书 and the others) are rendered as PDF in a CJK font; the
# slim image has none, and without one every notice would park until one is installed.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/bdc-hub --uid 10001 bdchub
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /etc/bdc-hub
COPY config.yaml /etc/bdc-hub/config.yaml
USER bdchub
# Listen on every interface: a published port reaches the container's own
# address, never its loopback (config.yaml's default, fine outside a container).
# Everything the hub writes (audit log, data key, embedded broker and store,
# the ferry's inbox, ledger and quarantine) goes to HUB_DATA_DIR, a volume.
# The log goes to the container runtime as JSON lines (config.yaml's logging.format).
# Secrets: config.yaml's defaults are published demo values, which hub run refuses;
# give each as HUB_…=value or HUB_…_FILE=/run/secrets/… (docs/configuration.md).
ENV HUB_CONFIG=/etc/bdc-hub/config.yaml \
    HUB_LOG_FORMAT=json \
    HUB_LISTEN_HOST=0.0.0.0 \
    HUB_DATA_DIR=/var/lib/bdc-hub \
    HUB_BROKER_URL=sqla+sqlite:////var/lib/bdc-hub/broker.db \
    HUB_STORE_URL=sqlite:////var/lib/bdc-hub/hub.db
VOLUME ["/var/lib/bdc-hub"]
EXPOSE 8080 9100
# Ready, not merely alive: /readyz answers 503 (urlopen raises, the check fails)
# while the store, the broker, the route workers or the pollers do not answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["hub"]
CMD ["run"]
