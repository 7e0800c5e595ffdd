# The NSM worker image. `docker compose up` builds it; see docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY processor ./processor
RUN pip install . && useradd --system --home-dir /app nsm

COPY definitions ./definitions
USER nsm
EXPOSE 6066
ENTRYPOINT ["nsm"]
CMD ["worker"]
