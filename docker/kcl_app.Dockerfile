# A KCL worker: `wikitide consume` (the Java MultiLangDaemon from kclpy-ext's jars, the Python record processor).
# Built from the repository root: docker build -f docker/kcl_app.Dockerfile .
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The daemon needs Java 17+ (KCL 3.1.3); the headless JRE is all it uses.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY wikitide ./wikitide
COPY producer ./producer
COPY kcl_app ./kcl_app
COPY api ./api
RUN pip install --no-cache-dir .
# The tuning for AWS, baked in; `wikitide consume` adds the stream, the lease table and the worker id.
COPY properties/aws.properties /app/properties/aws.properties
USER 10001:10001
ENTRYPOINT ["wikitide"]
CMD ["consume", "--properties", "/app/properties/aws.properties", "--state-dir", "/tmp/wikitide"]
