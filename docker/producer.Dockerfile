# The producer: `wikitide produce`. Built from the repository root: docker build -f docker/producer.Dockerfile .
# The same install as `make up` (pip install of this project with its pinned dependencies), without test extras.
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY wikitide ./wikitide
COPY producer ./producer
COPY kcl_app ./kcl_app
COPY api ./api
RUN pip install --no-cache-dir .
USER 10001:10001
ENTRYPOINT ["wikitide"]
CMD ["produce", "--source", "live"]
