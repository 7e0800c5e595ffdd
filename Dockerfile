# The NSM worker image. `docker compose up` builds it; see docker-compose.yml.

# The engine (native/, a cargo workspace) as an abi3 wheel of its bindings for CPython 3.11+.
FROM rust:1.86-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /maturin && /maturin/bin/pip install --no-cache-dir "maturin>=1.5,<2"
COPY native /native
RUN /maturin/bin/maturin build --release --manifest-path /native/python/Cargo.toml --out /wheels

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY --from=native /wheels /wheels
COPY pyproject.toml README.md ./
COPY processor ./processor
RUN pip install /wheels/*.whl . && rm -rf /wheels && useradd --system --home-dir /app nsm

COPY definitions ./definitions
USER nsm
EXPOSE 6066
ENTRYPOINT ["nsm"]
CMD ["worker"]
