# The API and dashboard: `wikitide api` (gunicorn serving api:create_app()).
# Built from the repository root: docker build -f docker/api.Dockerfile .
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
EXPOSE 8000
ENTRYPOINT ["wikitide"]
CMD ["api", "--bind", "0.0.0.0:8000", "--workers", "4"]
