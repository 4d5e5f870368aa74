# One image for every role (web, workers, beat); docker-compose.yml picks the command.
# torch 2.13.0 from PyPI is the CUDA build on Linux x86_64 (it also runs on CPU). For a smaller
# CPU-only image pass --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index>.
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app/platform:/app \
    DJANGO_ENV=production \
    TESSERA_VAR_DIR=/var/lib/tessera

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    fi \
    && pip install --no-cache-dir -r requirements.txt

COPY . .
RUN SECRET_KEY=collectstatic-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz \
    python manage.py collectstatic --noinput

RUN useradd --system --home /var/lib/tessera tessera \
    && mkdir -p /var/lib/tessera && chown tessera /var/lib/tessera
USER tessera
EXPOSE 8000
CMD ["gunicorn", "--chdir", "platform", "--bind", "0.0.0.0:8000", "--workers", "3", "tessera.wsgi:application"]
