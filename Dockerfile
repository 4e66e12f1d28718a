# sonorisk service image: CUDA runtime, the same install steps as
# scripts/setup.sh (which .ci/run uses), `sonorisk serve` as the entry point.
# tests/test_packaging.py checks that the Debian packages and the pip
# constraints here match scripts/setup.sh.
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# python3 + RUNTIME_APT_PACKAGES of scripts/setup.sh. The test-only packages
# (RTSP server, chromium, PostgreSQL server) stay out of the service image;
# Ubuntu's chromium is a snap stub that cannot install in a docker build anyway.
# PostgreSQL is reached by URL (psycopg[binary] brings its own libpq).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-pip ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sonorisk
COPY pyproject.toml constraints.txt README.md ./
COPY sonorisk ./sonorisk
COPY configs ./configs
COPY examples ./examples

# torch/torchvision pinned by constraints.txt, as in scripts/setup.sh; every
# extra (`all`: serve, study, timesformer, onnx, pretrained), not the test tools.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[all]" \
    && /opt/venv/bin/sonorisk --version
ENV PATH=/opt/venv/bin:$PATH \
    SONORISK_MODELS=/models \
    SONORISK_EXAMPLES=/opt/sonorisk/examples/busi

# The default bundle (sonorisk-busi) ships inside the package and serves when
# nothing else is named; other bundles install into the /models volume
# (`docker run -v models:/models IMAGE models install URL --sha256 HEX`).
VOLUME ["/models", "/data"]
EXPOSE 8000
ENTRYPOINT ["sonorisk"]
# The service (docs/serving.md): token auth is on (not loopback); the token is
# generated into /data/serve/token unless SONORISK_TOKEN is set. Any other verb
# still runs, e.g. `docker run IMAGE batch /data/archive --out /data/results.csv`
# or `docker run IMAGE demo --out /data/demo`.
CMD ["serve", "--config", "configs/serve.yaml", "--host", "0.0.0.0", "--data-dir", "/data/serve"]
