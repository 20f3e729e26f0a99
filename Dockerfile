# The service's image: API (gunicorn + uvicorn workers), Celery worker and beat share it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY workers ./workers
COPY config ./config
RUN pip install ".[server]" && useradd --system --home /app centers && mkdir -p /data && chown centers /data
USER centers
ENV CENTERS_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", "0.0.0.0:8000", "aggregator.api.main:build()"]
