# Image for the mscrowd API and workers, built by docker-compose.yml.
# TORCH_INDEX_URL picks the torch build: CPU for the API and backend worker, CUDA for the GPU worker.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md alembic.ini ./
COPY backend ./backend
COPY ml ./ml
COPY alembic ./alembic
COPY frontend ./frontend
COPY tutorials ./tutorials
# Editable, so `mscrowd migrate` finds alembic/ and the app finds frontend/ beside the packages.
RUN pip install -e .

RUN useradd --create-home --uid 10001 mscrowd && mkdir -p /data && chown mscrowd /data
USER mscrowd
ENV MSCROWD_DATA_DIR=/data
EXPOSE 8000
CMD ["sh", "-c", "mscrowd migrate && mscrowd serve --host 0.0.0.0 --port 8000 --no-worker"]
